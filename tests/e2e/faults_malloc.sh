# Allocation failure: a produced binary's train, eval and predict, each run again and again with its N-th
# allocation failed (tests/tools/failmalloc.c, through LD_PRELOAD) for N along the whole run, end with status
# 0 or a clean error: a non-zero status below 128, a message on stderr, no signal death, no hang, and no
# temporary file left in the checkpoint folder. FAULTS_MALLOC_RUNS (default 240) bounds the runs of the three
# commands together: N goes through each command's allocations with the stride that gives that many;
# FAULTS_MALLOC_STRIDE=1 tries every N. Skipped in the sanitizer builds, whose runtime replaces malloc.
source "$(dirname "$0")/common.bash"
need_data
grep -q -E '^LATHE_(SANITIZE|TSAN):BOOL=ON' "$LATHE_BINARY_DIR/CMakeCache.txt" 2>/dev/null &&
  skip "a sanitizer build: its runtime replaces malloc, which the failmalloc shim would have to replace"
shim="$LATHE_BINARY_DIR/lib/libfailmalloc.so"
[ -f "$shim" ] || skip "no $shim (tests/CMakeLists.txt builds it outside the sanitizer builds)"
"$LATHE" compile "$LATHE_SOURCE_DIR/models/fashion_mlp.lathe" -o mlp || fail "compile"
common=(--data "$DATA" --limit 256 --threads 1)
./mlp train "${common[@]}" --epochs 1 --checkpoint-dir ref >/dev/null || fail "the run without a failure"
# the command lines whose allocations fail (only the binary is preloaded: env sets LD_PRELOAD for it alone)
cmd_train=(./mlp train "${common[@]}" --set 'optimizer=Adam(lr = 1e-3)' --epochs 1 --checkpoint-dir ck --checkpoint-every 2 --log-json ck/log.jsonl)
cmd_eval=(./mlp eval "${common[@]}" --weights ref/last.safetensors)
cmd_predict=(./mlp predict "${common[@]}" --weights ref/last.safetensors --index 3)

cmds=(train eval predict)
total=0
declare -A count
for c in "${cmds[@]}"; do
  rm -rf ck && mkdir ck
  declare -n argv="cmd_$c"
  env FAILMALLOC_REPORT="$WORK/count.$c" LD_PRELOAD="$shim" "${argv[@]}" >/dev/null 2>"$c.err" ||
    { cat "$c.err"; fail "$c fails under the shim with no failure injected"; }
  count[$c]=$(cat "count.$c")
  [ "${count[$c]}" -gt 100 ] || fail "$c: only ${count[$c]} allocations counted: the shim does not see them"
  total=$((total + count[$c]))
done
runs=${FAULTS_MALLOC_RUNS:-240}
stride=${FAULTS_MALLOC_STRIDE:-$(( (total + runs - 1) / runs ))}
echo "allocations: train ${count[train]}, eval ${count[eval]}, predict ${count[predict]}; every ${stride}th failed"

tried=0 clean=0
for c in "${cmds[@]}"; do
  # the first allocations one by one (start-up, where most error paths begin), then the stride
  declare -n argv="cmd_$c"
  for n in $(seq 1 20) $(seq 21 "$stride" "${count[$c]}"); do
    rm -rf ck && mkdir ck
    rc=0
    timeout 60 env FAILMALLOC_N="$n" LD_PRELOAD="$shim" "${argv[@]}" >out.txt 2>err.txt || rc=$?
    tried=$((tried + 1))
    again="rerun: FAILMALLOC_N=$n FAILMALLOC_TRACE=1 LD_PRELOAD=$shim with $c"
    [ "$rc" -ne 124 ] || fail "$c with allocation $n failed: no end in 60 s ($again)"
    [ "$rc" -lt 126 ] || { cat err.txt; fail "$c with allocation $n failed: killed by signal $((rc - 128)) ($again)"; }
    ! grep -q -i -E 'sanitizer|segmentation|core dumped|assert' err.txt || { cat err.txt; fail "$c, allocation $n: $again"; }
    if [ "$rc" -ne 0 ]; then
      [ -s err.txt ] || fail "$c with allocation $n failed: status $rc and no message ($again)"
      [ "$(wc -l <err.txt)" -le 3 ] || { cat err.txt; fail "$c with allocation $n failed: more than a short message"; }
    else
      clean=$((clean + 1))
    fi
    leftover=$(ls -A ck | grep -E '\.tmp' || true)
    [ -z "$leftover" ] || fail "$c with allocation $n failed: a temporary file is left: $leftover"
  done
done
echo "$tried runs: $clean ended well (the failed allocation had a fallback), $((tried - clean)) with a clean error"
echo "ok"
