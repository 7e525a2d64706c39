# Read-only and missing folders for --checkpoint-dir, --log-json, --log-csv and --tensorboard, and a data file
# that shrinks while it is read: each a clean error (one line naming the path, a non-zero status) before any
# training, or, for a missing --checkpoint-dir or --tensorboard folder, the folder made. Read-only folders are
# a read-only tmpfs where this process may mount one (root, whom file modes do not stop), a mode 0555 folder
# elsewhere.
source "$(dirname "$0")/common.bash"
need_data
mounts=()
cleanup() {
  cd /
  for m in "${mounts[@]}"; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
  chmod -R u+w "$WORK" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
if [ "$(id -u)" = 0 ]; then
  mkdir ro && mount -t tmpfs -o ro,size=64k tmpfs ro || skip "root, and cannot mount a read-only tmpfs"
  mounts+=("$WORK/ro")
else
  mkdir ro && chmod 0555 ro
fi

"$LATHE" compile "$LATHE_SOURCE_DIR/models/fashion_mlp.lathe" -o mlp || fail "compile"
run=(./mlp train --data "$DATA" --limit 64 --epochs 1 --threads 1)
# refused FLAG PATH MESSAGE: the run stops with MESSAGE (a regex) and nothing trained
refused() {
  expect_fail "${run[@]}" "$1" "$2"
  expect_msg "$3"
  [ "$(wc -l <"$WORK/err")" -eq 1 ] || { cat "$WORK/err"; fail "$1 $2: more than one line"; }
  ! grep -q '^Epoch' "$WORK/stdout.txt" || fail "$1 $2: refused only after training"
}
refused --checkpoint-dir ro '^mlp: error: ro: cannot write in this folder: (Read-only file system|Permission denied)$'
refused --checkpoint-dir ro/ck '^mlp: error: ro/ck: cannot create folder: (Read-only file system|Permission denied)$'
refused --log-json ro/log.jsonl '^mlp: error: ro/log\.jsonl: cannot open: (Read-only file system|Permission denied)$'
refused --log-csv ro/log.csv '^mlp: error: ro/log\.csv: cannot open: (Read-only file system|Permission denied)$'
refused --tensorboard ro/tb '^mlp: error: TensorBoard: cannot create folder ro/tb: (Read-only file system|Permission denied)$'
refused --tensorboard ro '^mlp: error: TensorBoard: cannot create ro/events\.out\.tfevents\..*: (Read-only file system|Permission denied)$'
refused --log-json missing/log.jsonl '^mlp: error: missing/log\.jsonl: cannot open: No such file or directory$'
refused --log-csv missing/log.csv '^mlp: error: missing/log\.csv: cannot open: No such file or directory$'
echo text >afile
refused --checkpoint-dir afile '^mlp: error: afile: not a folder$'
refused --checkpoint-dir afile/ck '^mlp: error: afile/ck: cannot create folder: Not a directory$'
refused --tensorboard afile/tb '^mlp: error: TensorBoard: cannot create folder afile: a file of that name exists$'
# missing folders of checkpoints and event files are made, parents and all
"${run[@]}" --checkpoint-dir new/a/b --tensorboard new/tb/run1 >made.out 2>&1 || { cat made.out; fail "missing folders"; }
[ -f new/a/b/last.safetensors ] || fail "no checkpoint in the folder made"
ls new/tb/run1/events.out.tfevents.* >/dev/null || fail "no event file in the folder made"

# a data file that shrinks while the binary reads it: truncated to 1 MB once the binary has it open; the read
# fails with a message (or, where the truncation came after the read, the run ends well), never a crash
mkdir data
cp "$DATA"/*.gz data/
python3 - "$PWD/mlp" "$PWD/data" <<'PY' || fail "the shrinking data file"
import os, subprocess, sys, time
exe, data = sys.argv[1], sys.argv[2]
target = os.path.join(data, "train-images-idx3-ubyte.gz")
original = open(target, "rb").read()
caught = 0
for attempt in range(6):
    with open(target, "wb") as f:
        f.write(original)
    p = subprocess.Popen([exe, "train", "--data", data, "--limit", "64", "--epochs", "1", "--threads", "1"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    fds, done = f"/proc/{p.pid}/fd", False
    while not done and p.poll() is None:
        try:
            for fd in os.listdir(fds):
                if os.readlink(os.path.join(fds, fd)) == target:
                    os.truncate(target, 1 << 20)
                    done = True
                    break
        except OSError:
            pass
    err = p.communicate()[1].decode()
    if p.returncode < 0 or p.returncode >= 128 or any(w in err.lower() for w in ("sanitizer", "segmentation")):
        sys.exit(f"attempt {attempt}: status {p.returncode}: {err}")
    if p.returncode != 0:
        lines = err.strip().splitlines()
        if len(lines) != 1 or "train-images-idx3-ubyte.gz: truncated at byte offset" not in lines[0]:
            sys.exit(f"attempt {attempt}: not the message expected: {err}")
        caught += 1
        print("shrunk while read:", lines[0])
    if caught >= 2:
        break
if not caught:
    sys.exit("the truncation never landed during the read (6 attempts)")
PY
echo "ok"
