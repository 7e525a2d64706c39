# Data-parallel training on Open MPI (runtime/dist.h): K = 2 and 3 processes give the parameters of one
# process (a few hundred steps of the Quickstart MLP and the FashionMNIST CNN, shuffled, with a last batch of
# one sample so that a rank gets none); a checkpoint moves between K; a --mpi executable without mpirun is
# one process; a plain executable under mpirun refuses; a rank that hangs or dies ends the job.
source "$(dirname "$0")/common.bash"
need_data
command -v mpirun >/dev/null || skip "mpirun is not installed (openmpi-bin)"
[ -f "$LATHE_BINARY_DIR/lib/liblathe_rt_mpi.a" ] || skip "lathe was built without Open MPI (libopenmpi-dev)"
/usr/bin/python3 -c 'import numpy' 2>/dev/null || skip "python3-numpy is not installed"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
# the sanitizers' leak report at exit would count Open MPI's own allocations
export ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=0"
MPIRUN=(mpirun --bind-to none)
exec < /dev/null # mpirun forwards its standard input to rank 0; a test has none to give

"$LATHE" compile "$LATHE_SOURCE_DIR/models/fashion_mlp.lathe" --mpi -o mpi_mlp
"$LATHE" compile "$LATHE_SOURCE_DIR/models/fashion_cnn.lathe" --mpi -o mpi_cnn
"$LATHE" compile "$LATHE_SOURCE_DIR/models/fashion_mlp.lathe" -o mlp_plain

# the MLP: 3201 samples in batches of 16, 200 full batches and one of a single sample, shuffled. The CNN: 40
# batches of 64 and one of a single sample. Longer CNN runs drift apart as any two summation orders do (one
# process with the runtime's optimizer and with the fused one differ by 3e-5 after 80 steps and 1e-2 after
# 160): a gradient that differs in its last bit moves a max-pool or ReLU decision now and then, and
# training amplifies it. The MLP has no such decisions near a tie.
# Under the sanitizers (ten times slower) half the steps, and K = 2 only.
mlp_limit=3201 cnn_limit=2561 Ks="2 3"
case "$LATHE_BINARY_DIR" in *asan*) mlp_limit=1601 cnn_limit=1281 Ks=2 ;; esac
common=(--data "$DATA" --limit $mlp_limit --batch 16 --epochs 1 --threads 1 --set shuffle=true)
for model in mpi_mlp mpi_cnn; do
  args=("${common[@]}")
  [ $model = mpi_cnn ] && args+=(--batch 64 --limit $cnn_limit)
  ./$model train "${args[@]}" --checkpoint-dir ${model}1 > ${model}1.txt
  for K in $Ks; do
    "${MPIRUN[@]}" -np $K ./$model train "${args[@]}" --checkpoint-dir ${model}$K > ${model}$K.txt
    grep -q "^Processes: $K (Open MPI)" ${model}$K.txt || { cat ${model}$K.txt; fail "$model K=$K: no process line"; }
    same_checkpoints ${model}$K/last.safetensors ${model}1/last.safetensors 1e-5 || fail "$model: K=$K differs from K=1"
    # the metrics are those of every process's samples: the same accuracy printed
    [ $model = mpi_cnn ] || [ "$(grep 'Accuracy' ${model}$K.txt)" = "$(grep 'Accuracy' ${model}1.txt)" ] ||
      fail "$model K=$K: test accuracy differs: $(grep Accuracy ${model}$K.txt) vs $(grep Accuracy ${model}1.txt)"
  done
done

# resume across K: K=1 checkpoints mid-epoch, K=2 finishes the run; K=2 checkpoints, K=1 finishes
./mpi_mlp train "${common[@]}" --epochs 2 --checkpoint-dir straight > /dev/null
./mpi_mlp train "${common[@]}" --epochs 2 --checkpoint-dir a --checkpoint-every 30 --keep 100 > /dev/null
"${MPIRUN[@]}" -np 2 ./mpi_mlp train "${common[@]}" --epochs 2 --checkpoint-dir a2 \
  --resume a/checkpoint-30.safetensors > /dev/null
same_checkpoints a2/last.safetensors straight/last.safetensors 1e-5 || fail "resume K=1 -> K=2 differs"
"${MPIRUN[@]}" -np 2 ./mpi_mlp train "${common[@]}" --epochs 1 --checkpoint-dir b --log-json b.json > /dev/null
[ "$(wc -l < b.json)" = 1 ] || fail "rank 0 alone logs: $(wc -l < b.json) lines for one epoch"
./mpi_mlp train "${common[@]}" --epochs 2 --resume b/last.safetensors --checkpoint-dir b1 > /dev/null
same_checkpoints b1/last.safetensors straight/last.safetensors 1e-5 || fail "resume K=2 -> K=1 differs"

# a --mpi executable started alone is one process; a plain one under mpirun says what to do
./mpi_mlp train --data "$DATA" --limit 256 --epochs 1 > alone.txt
! grep -q "^Processes:" alone.txt || fail "a --mpi executable without mpirun must run as one process"
expect_fail "${MPIRUN[@]}" -np 2 ./mlp_plain train --data "$DATA" --limit 256 --epochs 1
expect_msg "compiled without --mpi"

# rank_pid K: the pid of rank K of the running job (its environment says its rank)
rank_pid() {
  for p in $(pgrep -x "$2"); do
    { tr '\0' '\n' < /proc/$p/environ; } 2>/dev/null | grep -x "OMPI_COMM_WORLD_RANK=$1" >/dev/null && { echo $p; return 0; }
  done
  return 0
}
# stop_rank SIGNAL: start a long run, send SIGNAL to rank 1 once it trains, and check the job ends
stop_rank() {
  local sig=$1 start=$SECONDS pid=
  "${MPIRUN[@]}" -np 2 ./mpi_cnn train --data "$DATA" --epochs 5 --threads 1 --dist-timeout 5 < /dev/null > run.txt 2> run.err &
  local job=$!
  for _ in $(seq 100); do
    pid=$(rank_pid 1 mpi_cnn)
    [ -n "$pid" ] && grep -q "^Epoch 1" run.txt 2>/dev/null && break
    sleep 0.2
  done
  [ -n "$pid" ] || { kill $job; fail "rank 1 did not start"; }
  sleep 1
  kill -s "$sig" "$pid"
  local rc=0 at=$SECONDS
  ( sleep 60; kill -9 $job ) >/dev/null 2>&1 &
  local watchdog=$!
  wait $job || rc=$?
  pkill -P $watchdog sleep 2>/dev/null || true
  kill $watchdog 2>/dev/null || true
  kill -9 "$pid" 2>/dev/null || true
  [ $((SECONDS - at)) -lt 45 ] || fail "SIG$sig to rank 1: the job still ran after 45 s"
  [ $rc -ne 0 ] || fail "SIG$sig to rank 1: the job exited 0"
  echo "SIG$sig to rank 1: job ended in $((SECONDS - start)) s with status $rc"
}
stop_rank KILL
stop_rank STOP
grep -q "did not complete within 5 s" run.err || { cat run.err; fail "a hung rank: no timeout message"; }
echo "mpi: ok"
