# Checkpoints never lose work: a training process killed with SIGKILL at random moments and resumed from
# what is on disk, again and again, ends with the parameters (and optimizer state) of an uninterrupted run, bit
# for bit; the checkpoint on disk is complete and loadable at every kill. Runs the runtime's optimizer (Adam,
# a schedule, dropout-free MLP) with a checkpoint every 3 steps, so that kills land mid-epoch.
source "$(dirname "$0")/common.bash"
need_data
"$LATHE" compile "$LATHE_SOURCE_DIR/models/fashion_mlp.lathe" -o mlp || fail "compile"
run=(./mlp train --data "$DATA" --limit 3000 --epochs 3 --batch 32 --shuffle --seed 9 --threads 1
     --set 'optimizer=Adam(lr = 1e-3)' --set 'schedule=StepLR(step_size = 1, gamma = 0.5)'
     --set 'transforms=[random_crop(28, padding = 2)]' --checkpoint-every 3)
"${run[@]}" --checkpoint-dir straight >straight.out 2>&1 || { cat straight.out; fail "uninterrupted run"; }

mkdir -p killed
seed=${KILL_SEED:-11}
kills=0
# up to 8 kills at pseudo-random moments (the same sequence for a KILL_SEED), then a run left to finish: a
# slow build (the sanitizers) gets as far as a fast one, only with fewer kills landing
for attempt in $(seq 1 9); do
  resume=()
  [ -f killed/last.safetensors ] && resume=(--resume killed/last.safetensors)
  "${run[@]}" --checkpoint-dir killed "${resume[@]}" >"attempt$attempt.out" 2>&1 &
  pid=$!
  if [ "$attempt" -lt 9 ]; then
    delay=$(python3 -c "import random; r = random.Random($seed * 1000 + $attempt); print(round(r.uniform(0.1, 1.5), 3))")
    sleep "$delay"
    if kill -9 "$pid" 2>/dev/null; then
      wait "$pid" 2>/dev/null || true
      kills=$((kills + 1))
      # what is on disk is complete: it loads (eval checks every byte range)
      if [ -f killed/last.safetensors ]; then
        ./mlp eval --weights killed/last.safetensors --data "$DATA" --limit 100 >/dev/null 2>eval.err \
          || { cat eval.err; fail "the checkpoint on disk after kill $kills does not load"; }
      fi
      continue
    fi
  fi
  wait "$pid" || { cat "attempt$attempt.out"; fail "attempt $attempt failed"; }
  break
done
grep -q '^Done!' "attempt$attempt.out" || fail "training did not finish"
echo "killed $kills times; finished on attempt $attempt"
[ "$kills" -ge 1 ] || fail "no kill landed: the run is too short to test anything"
same_checkpoints killed/last.safetensors straight/last.safetensors ||
  fail "the resumed run differs from the uninterrupted one"
# the last run cleared what killed writes left (hidden temporary files); only complete checkpoints remain
ls -A killed | grep -q -v -E '^(last|best|checkpoint-[0-9]+)\.safetensors$' && fail "unexpected files in the checkpoint folder: $(ls -A killed)"
echo "ok"
