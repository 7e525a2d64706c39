# Out of memory, told before it happens (runtime/memcheck.c), on the Quickstart MLP and FashionMNIST: under
# LATHE_MEMORY_LIMIT a run that does not fit stops before its first step with the figure, what it is for and
# the largest batch that fits; that batch runs and the next one stops; --batch auto picks it and says so on
# the first line; info prints the memory there is beside the plan's peak; under mpirun each process checks its
# own share of the batch.
source "$(dirname "$0")/common.bash"
need_data
"$LATHE" compile "$LATHE_SOURCE_DIR/models/fashion_mlp.lathe" -o mlp || fail "compile"
export LATHE_MEMORY_LIMIT=100M
run=(./mlp train --data "$DATA" --epochs 1 --limit 3000)

expect_fail "${run[@]}" --batch 3000 --checkpoint-dir ckpt
expect_msg '^mlp: error: not enough memory to train at batch 3000: the run needs [0-9.]+ MiB \([0-9]+ bytes: train-step arena'
expect_msg 'loader buffers .*evaluation .*parameters .*data sets [0-9.]+ MiB\), but 100.0 MiB \(104857600 bytes, from LATHE_MEMORY_LIMIT\) is available'
[ "$(wc -l <"$WORK/err")" -eq 1 ] || fail "the message is not one line"
grep -q Epoch "$WORK/stdout.txt" && fail "the run started training before it stopped"
[ -e ckpt ] && fail "the run created its checkpoint folder before it stopped"
best=$(sed -n -E 's/.*the largest batch that fits is ([0-9]+) \(--batch \1, or --batch auto\)$/\1/p' "$WORK/err")
[ -n "$best" ] && [ "$best" -ge 1 ] && [ "$best" -lt 3000 ] || { cat "$WORK/err"; fail "no largest batch below 3000"; }

"${run[@]}" --batch "$best" >fits.out || fail "the suggested batch $best does not run"
grep -q '^Done!$' fits.out || fail "the run at batch $best did not finish"
expect_fail "${run[@]}" --batch $((best + 1))
expect_msg "not enough memory to train at batch $((best + 1)): .* the largest batch that fits is $best "

"${run[@]}" --batch auto >auto.out || fail "--batch auto"
head -1 auto.out | grep -q -E "^Batch: $best \(--batch auto: the largest that fits in 100.0 MiB \(104857600 bytes, from LATHE_MEMORY_LIMIT\); at most 3000, the training samples\)$" \
  || { head -3 auto.out; fail "--batch auto's first line"; }
grep -q '^Done!$' auto.out || fail "the --batch auto run did not finish"

# (LATHE_READ_LIMIT: else the readers' budget, the same 1 MiB, stops the data set before the check)
LATHE_MEMORY_LIMIT=1M LATHE_READ_LIMIT=1G expect_fail "${run[@]}" --batch auto
expect_msg 'not enough memory to train, even at batch 1: the run needs .* but 1.0 MiB \(1048576 bytes, from LATHE_MEMORY_LIMIT\) is available'

./mlp info >info.out || fail "info"
grep -q -E '^peak: [0-9]+ bytes at batch 64 ' info.out || fail "info has no peak line"
grep -A1 '^peak:' info.out | grep -E '^memory available: 104857600 bytes \(100.0 MiB, LATHE_MEMORY_LIMIT\)$' \
  || { cat info.out; fail "info does not print the memory available beside the peak"; }
unset LATHE_MEMORY_LIMIT
./mlp info | grep -E '^memory available: [0-9]+ bytes \([0-9.]+ [KMGT]iB, (MemAvailable in /proc/meminfo|the cgroup limit in /sys/fs/cgroup)' \
  || fail "info without LATHE_MEMORY_LIMIT does not say where the figure comes from"

# under mpirun each process checks its own share: two processes fit about twice the batch of one
command -v mpirun >/dev/null || { echo "ok (mpirun is not installed: the mpirun case skipped)"; exit 0; }
[ -f "$LATHE_BINARY_DIR/lib/liblathe_rt_mpi.a" ] || { echo "ok (no Open MPI backend: the mpirun case skipped)"; exit 0; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=0"
"$LATHE" compile "$LATHE_SOURCE_DIR/models/fashion_mlp.lathe" --mpi -o mpi_mlp || fail "compile --mpi"
if mpirun --bind-to none -x LATHE_MEMORY_LIMIT=100M -np 2 ./mpi_mlp train --data "$DATA" --epochs 1 --limit 3000 \
    --batch 3000 </dev/null >mpi.out 2>mpi.err; then
  fail "mpirun: the run at batch 3000 should not fit"
fi
grep -q -E 'error: not enough memory to train at batch 3000: the run needs .* bytes in each process' mpi.err \
  || { cat mpi.err; fail "mpirun: no per-process message"; }
best2=$(sed -n -E 's/.*the largest batch that fits is ([0-9]+) .*/\1/p' mpi.err | head -1)
[ -n "$best2" ] && [ "$best2" -gt "$best" ] || fail "mpirun: 2 processes fit a batch of $best2, one process $best"
echo "ok"
