# TensorBoard event files (runtime/tb.c): a file that tests/tools/rt_tb_probe writes decodes, record by record
# with every CRC checked, to the scalars and the histogram written (tensorboard_decode.py: TensorBoard's reader
# where it is installed, else a decoder of the wire format of its own).
source "$(dirname "$0")/common.bash"
command -v python3 >/dev/null || skip "python3 is not installed"
PROBE="${LATHE_BINARY_DIR:?}/bin/rt_tb_probe"
[ -x "$PROBE" ] || fail "$PROBE is not built"
file=$("$PROBE" "$WORK/runs/probe") || fail "rt_tb_probe failed"
case $(basename "$file") in
  events.out.tfevents.[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9].*) ;;
  *) fail "event file $file is not named as TensorFlow names them" ;;
esac
[ "$(dirname "$file")" = "$WORK/runs/probe" ] || fail "event file $file is not in the folder asked for"
python3 "$LATHE_SOURCE_DIR/tests/e2e/tensorboard_decode.py" "$file" || fail "the event file does not decode as written"
python3 "$LATHE_SOURCE_DIR/tests/e2e/tensorboard_decode.py" --dump "$file" >dump.txt
grep -qx "1 val/loss nan" dump.txt && grep -qx "1 fc.weight histogram 6 -2 3" dump.txt || { cat dump.txt; fail "--dump"; }
# a flipped bit in the last record is caught by its CRC, so that the check above means something
python3 -c 'import sys; d = bytearray(open(sys.argv[1], "rb").read()); d[-20] ^= 0x40; open(sys.argv[2], "wb").write(d)' \
  "$file" "$WORK/bad.tfevents"
expect_fail python3 "$LATHE_SOURCE_DIR/tests/e2e/tensorboard_decode.py" "$WORK/bad.tfevents"
expect_msg "CRC|Error"
echo "ok"
