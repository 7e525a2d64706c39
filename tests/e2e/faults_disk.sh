# Disk full and write errors: a log (--log-json, --log-csv on /dev/full; --tensorboard on a full tmpfs), a
# checkpoint that no longer fits (--checkpoint-dir on a tiny tmpfs) and standard output on /dev/full each stop
# the run with one clear message and a non-zero status; the previous checkpoint stays intact and loadable and
# no temporary file is left. The tmpfs parts need mount (root): elsewhere they are skipped with a note.
source "$(dirname "$0")/common.bash"
need_data
mounts=()
cleanup() {
  cd /
  for m in "${mounts[@]}"; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
# tiny_fs DIR KIB: a tmpfs of KIB KiB at DIR; false where this process may not mount one
tiny_fs() { mkdir -p "$1" && mount -t tmpfs -o "size=${2}k" tmpfs "$1" 2>/dev/null && mounts+=("$WORK/$1"); }

"$LATHE" compile "$LATHE_SOURCE_DIR/models/fashion_mlp.lathe" -o mlp || fail "compile"
run=(./mlp train --data "$DATA" --limit 640 --batch 32 --threads 1)
# step_of FILE: the step a checkpoint holds (the file is read whole: a torn file fails here)
step_of() { python3 -c 'import json,struct,sys; raw=open(sys.argv[1],"rb").read(); n=struct.unpack("<Q",raw[:8])[0]; h=json.loads(raw[8:8+n]); end=max(v["data_offsets"][1] for k,v in h.items() if k!="__metadata__"); assert len(raw)==8+n+end, "size"; print(h["__metadata__"]["step"])' "$1"; }
loads() { ./mlp eval --weights "$1" --data "$DATA" --limit 100 >/dev/null 2>eval.err || { cat eval.err; fail "$1 does not load"; }; }
no_temporaries() { ! ls -A "$1" | grep -q -E 'tmp' || fail "temporary files left in $1: $(ls -A "$1")"; }

# a run of one epoch, then its continuation with a log on a full device: the continuation stops at the end of
# its first epoch, before that epoch's checkpoint, and the first run's checkpoint is left as it was
"${run[@]}" --epochs 1 --checkpoint-dir ck >first.out 2>&1 || { cat first.out; fail "the first run"; }
before=$(step_of ck/last.safetensors)
for log in --log-json --log-csv; do
  expect_fail "${run[@]}" --epochs 2 --checkpoint-dir ck --resume ck/last.safetensors "$log" /dev/full
  expect_msg '^mlp: error: /dev/full: cannot write: No space left on device$'
  [ "$(wc -l <"$WORK/err")" -eq 1 ] || { cat "$WORK/err"; fail "$log /dev/full: more than one line"; }
  [ "$(step_of ck/last.safetensors)" = "$before" ] || fail "$log /dev/full: the checkpoint changed"
  loads ck/last.safetensors
  no_temporaries ck
done

# standard output on a full device: the run's results are lost, so the status says so
eval_to_full() { ./mlp eval --weights ck/last.safetensors --data "$DATA" --limit 100 --json >/dev/full; }
expect_fail eval_to_full
expect_msg 'standard output: cannot write: No space left on device'

if ! tiny_fs small 4096; then
  echo "note: cannot mount a tmpfs here (not root?): the full-disk checkpoint and TensorBoard parts are skipped"
  echo "ok"
  exit 0
fi
# a folder with room for one checkpoint (2.7 MB) and not for the temporary file of the next beside it: the
# first --checkpoint-every write lands, the second fails with ENOSPC
expect_fail "${run[@]}" --epochs 1 --checkpoint-dir small --checkpoint-every 5
expect_msg '^mlp: error: small/\.last\.safetensors\.tmp-[0-9]+: cannot write: No space left on device$'
[ "$(wc -l <"$WORK/err")" -eq 1 ] || { cat "$WORK/err"; fail "checkpoint on a full disk: more than one line"; }
[ "$(step_of small/last.safetensors)" = 5 ] || fail "the checkpoint of step 5 is not intact"
loads small/last.safetensors
no_temporaries small
# and the run resumes from it once there is room
mkdir roomy && cp small/last.safetensors roomy/
"${run[@]}" --epochs 1 --checkpoint-dir roomy --resume roomy/last.safetensors >resumed.out 2>&1 ||
  { cat resumed.out; fail "resuming from the checkpoint that survived"; }

# TensorBoard into a full tmpfs: the first epoch's events do not fit
tiny_fs full 64 || fail "second tmpfs"
dd if=/dev/zero of=full/filler bs=4k 2>/dev/null || true # fills it: dd stops at ENOSPC
expect_fail "${run[@]}" --epochs 1 --tensorboard full/tb
expect_msg '^mlp: error: TensorBoard: cannot write full/tb/events\.out\.tfevents\.[^ ]+: No space left on device$'
[ "$(wc -l <"$WORK/err")" -eq 1 ] || { cat "$WORK/err"; fail "TensorBoard on a full disk: more than one line"; }
echo "ok"
