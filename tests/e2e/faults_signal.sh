# SIGTERM and SIGINT during train: the binary saves a checkpoint at the batch it reached, says so in one line
# and exits with 128 + the signal; --resume from that checkpoint ends with the parameters of an uninterrupted
# run, bit for bit. A second signal while it saves leaves the folder with complete checkpoints only. Outside
# train (eval) the signals keep their default action.
source "$(dirname "$0")/common.bash"
need_data
"$LATHE" compile "$LATHE_SOURCE_DIR/models/fashion_mlp.lathe" -o mlp || fail "compile"
# 6400 samples: long enough (a second or so an epoch) that a signal sent 0.1-0.3 s after "Epoch 1" lands
# inside training rather than after it, where the run rightly finishes with status 0
run=(./mlp train --data "$DATA" --limit 6400 --epochs 2 --batch 32 --shuffle --seed 9 --threads 1
     --set 'optimizer=Adam(lr = 1e-3)' --set 'schedule=StepLR(step_size = 1, gamma = 0.5)')
"${run[@]}" --checkpoint-dir straight >straight.out 2>&1 || { cat straight.out; fail "uninterrupted run"; }

# start_training DIR OUT: the run in the background (SIGINT not ignored, as it would be for a plain `&`), its
# pid in $pid once its first epoch has begun
start_training() {
  env --default-signal=INT "${run[@]}" --checkpoint-dir "$1" >"$2" 2>&1 &
  pid=$!
  for _ in $(seq 1 600); do
    grep -q '^Epoch 1' "$2" && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  grep -q '^Epoch 1' "$2" || { cat "$2"; fail "the run did not start"; }
}

for sig in TERM INT; do
  want=$((128 + $(kill -l "$sig")))
  start_training "$sig" "$sig.out"
  sleep 0.1
  kill -s "$sig" "$pid"
  rc=0
  wait "$pid" || rc=$?
  [ "$rc" -eq "$want" ] || { cat "$sig.out"; fail "SIG$sig: exit status $rc, expected $want"; }
  grep -q "stopped by SIG$sig in epoch [0-9]* after [0-9]* batches: saved $sig/last.safetensors" "$sig.out" ||
    { cat "$sig.out"; fail "SIG$sig: no message saying where the run stopped"; }
  [ "$(grep -c 'stopped by' "$sig.out")" -eq 1 ] || fail "SIG$sig: more than one line about it"
  # a signal after the first epoch finds its "Test Error:" header of the test pass in the output: not an error
  grep -v '^Test Error: *$' "$sig.out" >"$sig.checked" || true
  ! grep -q -i -E 'error|sanitizer' "$sig.checked" || { cat "$sig.out"; fail "SIG$sig: an error"; }
  ls -A "$sig" | grep -q -v -E '^(last|best)\.safetensors$' && fail "SIG$sig: files beside the checkpoint: $(ls -A "$sig")"
  batch=$(python3 -c 'import json,struct,sys; raw=open(sys.argv[1],"rb").read(); n=struct.unpack("<Q",raw[:8])[0]; print(json.loads(raw[8:8+n])["__metadata__"]["batch"])' "$sig/last.safetensors")
  echo "SIG$sig: stopped after batch $batch: $(grep 'stopped by' "$sig.out")"
  # the checkpoint resumes, and the resumed run ends where the uninterrupted one did
  "${run[@]}" --checkpoint-dir "$sig" --resume "$sig/last.safetensors" >"$sig.resumed" 2>&1 ||
    { cat "$sig.resumed"; fail "SIG$sig: the resumed run failed"; }
  grep -q '^Done!' "$sig.resumed" || fail "SIG$sig: the resumed run did not finish"
  same_checkpoints "$sig/last.safetensors" straight/last.safetensors ||
    fail "SIG$sig: the resumed run differs from the uninterrupted one"
done

# a second SIGTERM right after the first (while the checkpoint is written, or just after): the process ends,
# and what the folder holds is complete (no visible temporary) and loads
start_training twice twice.out
sleep 0.3
kill -TERM "$pid"; kill -TERM "$pid" 2>/dev/null || true
rc=0
wait "$pid" || rc=$?
[ "$rc" -eq 143 ] || { cat twice.out; fail "two SIGTERMs: exit status $rc"; }
ls -A twice | grep -q -v -E '^\.?(last|best)\.safetensors(\.tmp-[0-9]+)?$' && fail "two SIGTERMs: $(ls -A twice)"
if [ -f twice/last.safetensors ]; then
  ./mlp eval --weights twice/last.safetensors --data "$DATA" --limit 100 >/dev/null 2>eval.err ||
    { cat eval.err; fail "two SIGTERMs: the checkpoint does not load"; }
fi

# without --checkpoint-dir: the same status and a line saying that nothing was saved
env --default-signal=INT "${run[@]}" >nodir.out 2>&1 &
pid=$!
for _ in $(seq 1 600); do grep -q '^Epoch 1' nodir.out && break; sleep 0.05; done
sleep 0.2
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
[ "$rc" -eq 143 ] || { cat nodir.out; fail "no --checkpoint-dir: exit status $rc"; }
grep -q 'stopped by SIGTERM in epoch [0-9]* after [0-9]* batches: nothing saved' nodir.out ||
  { cat nodir.out; fail "no --checkpoint-dir: no message"; }

# under mpirun: SIGTERM to every rank (as a batch scheduler sends it; mpirun itself, signalled, ends the job
# without waiting): the ranks stop at the same step, rank 0 saves, and the job exits with 143
if command -v mpirun >/dev/null && [ -f "$LATHE_BINARY_DIR/lib/liblathe_rt_mpi.a" ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
  export ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=0" # Open MPI's own allocations
  "$LATHE" compile "$LATHE_SOURCE_DIR/models/fashion_mlp.lathe" --mpi -o mpi_mlp || fail "compile --mpi"
  mpirun --bind-to none -np 2 ./mpi_mlp train --data "$DATA" --limit 4000 --epochs 2 --threads 1 \
    --checkpoint-dir "$WORK/mpick" </dev/null >mpi.out 2>&1 &
  pid=$!
  for _ in $(seq 1 1200); do grep -q '^Epoch 1' mpi.out && break; kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  grep -q '^Epoch 1' mpi.out || { cat mpi.out; fail "the mpirun job did not start"; }
  sleep 0.2
  ranks=$(pgrep -f -- "--checkpoint-dir $WORK/mpick" | grep -v -x "$pid" || true)
  [ "$(echo "$ranks" | wc -w)" -ge 2 ] || fail "the ranks are not found: $ranks"
  kill -TERM $ranks
  rc=0
  wait "$pid" || rc=$?
  [ "$rc" -eq 143 ] || { cat mpi.out; fail "mpirun: exit status $rc, expected 143"; }
  [ "$(grep -c 'stopped by SIGTERM in epoch [0-9]* after [0-9]* batches: saved' mpi.out)" -eq 1 ] ||
    { cat mpi.out; fail "mpirun: not one line from rank 0 about the stop"; }
  ./mpi_mlp eval --weights mpick/last.safetensors --data "$DATA" --limit 100 >/dev/null 2>eval.err </dev/null ||
    { cat eval.err; fail "mpirun: the checkpoint does not load"; }
  echo "mpirun: $(grep -o 'stopped by.*' mpi.out)"
else
  echo "note: no mpirun or no Open MPI runtime: the data-parallel part is skipped"
fi
echo "ok"
