#!/usr/bin/env bash
# `lathe ir MODEL --stats` of fashion_mlp (784 -> 512 -> 512 -> 10, ReLU, SGD), its numbers worked out here
# independently: the predict graph's FLOPs exactly, the train graph's as its eight matmuls plus an elementwise
# extra (the SGD update and the rest) within bounds, bytes moved between what must move and a loose ceiling, the
# peak against `compile --mem-report`, and the totals as the sum of the lines.
source "$(dirname "$0")/common.bash"
MODEL="$LATHE_SOURCE_DIR/models/fashion_mlp.lathe"

# col GRAPH COLUMN: a number of the table in stats.txt (columns: graph nodes kernels FLOPs bytes peak)
col() { awk -v g="$1" -v c="$2" '$1 == g { print $c }' stats.txt; }

"$LATHE" ir "$MODEL" --stats >stats.txt || fail "lathe ir --stats"
cat stats.txt
grep -q '^stats of .*fashion_mlp.lathe (model NeuralNetwork) at batch 64, per step$' stats.txt ||
  fail "no header with the recipe's batch (64)"
B=64
W=$((784 * 512 + 512 * 512 + 512 * 10)) # multiply-adds of one sample's forward matmuls
P=$((W + 512 + 512 + 10))               # parameters

# predict: three matmuls, three bias adds, two ReLUs, nothing else
want=$((B * (2 * W + 1034 + 1024)))
[ "$(col predict 4)" = "$want" ] || fail "predict FLOPs $(col predict 4), expected $want"

# train: the forward's 3 matmuls, the 3 weight gradients, and the input gradients of layers 2 and 3 (the
# input x gets none); then per parameter at least SGD's multiply and subtract, and per activation a few more
mm=$((2 * B * W * 2 + 2 * B * (512 * 512 + 512 * 10)))
flops=$(col train 4)
extra=$((flops - mm))
[ "$extra" -ge $((2 * P)) ] || fail "train FLOPs $flops: $extra beyond the matmuls' $mm, fewer than SGD's $((2 * P))"
[ "$extra" -le $((2 * P + 30 * B * (1034 + 784))) ] || fail "train FLOPs $flops: $extra beyond the matmuls' $mm"

# bytes: at least the parameters, the images and the logits; at most everything written and read 4 times
bytes=$(col predict 5)
[ "$bytes" -ge $((4 * (P + B * (784 + 10)))) ] || fail "predict moves $bytes bytes, less than its inputs"
[ "$bytes" -le $((4 * (P + 4 * B * (784 + 1034 + 1034)))) ] || fail "predict moves $bytes bytes"
[ "$(col train 5)" -gt "$bytes" ] || fail "the train step moves fewer bytes than predict"

# kernels: predict is three fused matmul epilogues
[ "$(col predict 3)" = 3 ] || fail "predict has $(col predict 3) kernels, expected 3"

# peak: the last line is compile --mem-report's; each graph holds at least its parameters
"$LATHE" compile "$MODEL" --mem-report >mem.txt || fail "compile --mem-report"
[ "$(tail -1 stats.txt)" = "$(tail -1 mem.txt)" ] || fail "peak line differs from --mem-report: $(tail -1 mem.txt)"
for g in train eval predict; do
  [ "$(col $g 6)" -ge $((4 * P)) ] || fail "$g: peak $(col $g 6) below the parameters' bytes"
done

# totals: sums of the graph lines, and the largest peak
for c in 2 3 4 5; do
  sum=$(awk -v c=$c '$1 ~ /^(train|grads|eval|predict)$/ { s += $c } END { print s }' stats.txt)
  [ "$(col total $c)" = "$sum" ] || fail "total of column $c is $(col total $c), the lines sum to $sum"
done
max=$(awk '$1 ~ /^(train|grads|eval|predict)$/ && $6 > m { m = $6 } END { print m }' stats.txt)
[ "$(col total 6)" = "$max" ] || fail "total peak $(col total 6), the largest graph's is $max"

# --batch: FLOPs grow by the same amount with each sample
for b in 1 2 3; do
  "$LATHE" ir "$MODEL" --stats --batch $b >stats.txt || fail "lathe ir --stats --batch $b"
  f[$b]=$(col train 4)
done
[ $((f[2] - f[1])) = $((f[3] - f[2])) ] || fail "train FLOPs at batch 1, 2, 3: ${f[*]}"
[ "$(col predict 4)" = $((3 * (2 * W + 2058))) ] || fail "predict FLOPs at batch 3: $(col predict 4)"

# before memplan there is no plan: the peak column says so
"$LATHE" ir "$MODEL" --stats --after fuse >stats.txt || fail "lathe ir --stats --after fuse"
[ "$(col train 6)" = "-" ] || fail "a peak before the memory plan"
grep -q 'no peak before the memory plan' stats.txt || fail "no note that the plan is missing"

# usage errors exit 2
"$LATHE" ir "$MODEL" --stats --dot >/dev/null 2>&1 && fail "--stats --dot accepted"
[ $? = 2 ] || fail "--stats --dot: not exit status 2"
"$LATHE" ir "$MODEL" --batch 8 >/dev/null 2>&1 && fail "--batch without --stats accepted"
echo "ok: lathe ir --stats of fashion_mlp"
