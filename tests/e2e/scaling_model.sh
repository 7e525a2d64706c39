# bench/scaling_model.py, which makes docs/scaling.md's tables: on LeNet-5 and the frozen transfer model it
# must give the parameter and FLOP counts worked out by hand in that page, and the ring allreduce's bytes and
# time from the formula.
source "$(dirname "$0")/common.bash"
[ -x /usr/bin/python3 ] || skip "/usr/bin/python3 is not installed"
mkdir models
cp "$LATHE_SOURCE_DIR/models/lenet5.lathe" "$LATHE_SOURCE_DIR/models/fashion_cnn_transfer.lathe" models/
# 8 Gb/s = 1 GB/s and no latency: the allreduce of S bytes over K = 8 takes 2 * 7/8 * S / 1e9 s
/usr/bin/python3 "$LATHE_SOURCE_DIR/bench/scaling_model.py" --lathe "$LATHE" --models models --ranks 8 \
  --bandwidth-gbit 8 --latency-us 0 >out.md 2>err.txt || { cat err.txt; fail "scaling_model.py failed"; }
cat out.md
row() { grep -E "^\| \`$1\` \| $2" out.md || fail "no row for $1 with '$2'"; }
# LeNet-5: 61,706 parameters, S = 246,824 bytes; forward 833,040 FLOPs, training 3 x 833,040 - 235,200
row lenet5 "61,706 \| 246.82 kB \| 431.94 kB \| 833 kFLOP \| 2.26 MFLOP \|" >/dev/null
# the frozen body has no gradient: 258 trainable values, and training costs the forward only
row fashion_cnn_transfer "258 \(\+420,352 frozen\) \| 1.03 kB \|" >/dev/null
# weak scaling, K = 8: 2 * 7/8 * 246,824 B at 1 GB/s = 0.432 ms
row lenet5 "64 \| [0-9.]+ \| 0.432 \|" >/dev/null
# a bad flag is one message and a non-zero exit
expect_fail /usr/bin/python3 "$LATHE_SOURCE_DIR/bench/scaling_model.py" --lathe "$LATHE" --ranks 8,x
expect_msg "--ranks"
echo "ok"
