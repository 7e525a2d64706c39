# Every optimizer, schedule and option of the recipe trains as PyTorch does: one Quickstart binary (compiled
# with SGD) is run with `--set` for each recipe below on the first 640 FashionMNIST images, and the same run
# replayed in PyTorch from the same initial weights (tests/e2e/torch_recipe_parity.py) must give the same
# parameters. Skipped where python3-torch is missing.
source "$(dirname "$0")/common.bash"
need_data
/usr/bin/python3 -c 'import torch' 2>/dev/null || skip "python3-torch is not installed"
"$LATHE" compile "$LATHE_SOURCE_DIR/models/fashion_mlp.lathe" -o mlp || fail "compile"
common=(--data "$DATA" --limit 640 --no-shuffle --seed 3)
# the initial weights: an epoch at lr 0
./mlp train "${common[@]}" --epochs 1 --set 'optimizer=SGD(lr = 0)' --checkpoint-dir init >/dev/null || fail "init"

# run NAME EPOCHS 'SET...' 'PYTORCH RECIPE (JSON)'. The float32 gradients of OpenBLAS and PyTorch differ in
# their last bits; Adam's, RMSprop's and Adagrad's divisions by the root of tiny second moments magnify that
# (tests/e2e/torch_optim.sh shows the updates themselves bit for bit), so those runs allow 2e-3 of the move: a
# wrong schedule, group, clipping or accumulation is off by a large part of it.
run() {
  local name=$1 epochs=$2 sets=$3 recipe=$4
  local args=()
  while IFS= read -r s; do [ -n "$s" ] && args+=(--set "$s"); done <<<"$sets"
  ./mlp train "${common[@]}" --epochs "$epochs" "${args[@]}" --checkpoint-dir "$name" --log-json "$name.jsonl" \
    >"$name.out" 2>&1 || { cat "$name.out"; fail "$name: train"; }
  echo "== $name"
  /usr/bin/python3 "$LATHE_SOURCE_DIR/tests/e2e/torch_recipe_parity.py" init/last.safetensors \
    "$name/last.safetensors" "$DATA" 640 "$epochs" "$recipe" || fail "$name: PyTorch's parameters differ"
}

run adam 2 'optimizer=Adam(lr = 1e-3)
schedule=StepLR(step_size = 1, gamma = 0.5)' \
  '{"tolerance": 2e-3, "optimizer": ["Adam", {"lr": 1e-3}], "schedule": ["StepLR", {"step_size": 1, "gamma": 0.5}]}'
run adamw_amsgrad 1 'optimizer=AdamW(lr = 2e-3, betas = [0.8, 0.99], weight_decay = 0.1, amsgrad = true)
clip_grad_norm=0.5' \
  '{"tolerance": 2e-3, "optimizer": ["AdamW", {"lr": 2e-3, "betas": [0.8, 0.99], "weight_decay": 0.1, "amsgrad": true}],
    "clip_grad_norm": 0.5}'
run rmsprop 1 'optimizer=RMSprop(lr = 1e-3, momentum = 0.5, centered = true, weight_decay = 1e-3)' \
  '{"tolerance": 2e-3, "optimizer": ["RMSprop", {"lr": 1e-3, "momentum": 0.5, "centered": true, "weight_decay": 1e-3}]}'
run adagrad 1 'optimizer=Adagrad(lr = 0.05, lr_decay = 0.01, initial_accumulator_value = 0.1)
clip_grad_value=0.01' \
  '{"tolerance": 2e-3, "optimizer": ["Adagrad", {"lr": 0.05, "lr_decay": 0.01, "initial_accumulator_value": 0.1}],
    "clip_grad_value": 0.01}'
run sgd_groups 2 'optimizer=SGD(lr = 0.05, momentum = 0.9, nesterov = true, weight_decay = 1e-2)
param_groups=[group("*.bias", weight_decay = 0), group("linear_relu_stack.4.*", lr = 0.01)]
schedule=LambdaLR(0.7 ** epoch)' \
  '{"optimizer": ["SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": true, "weight_decay": 1e-2}],
    "groups": [["*.bias", {"weight_decay": 0}], ["linear_relu_stack.4.*", {"lr": 0.01}]],
    "schedule": ["LambdaLR", {"expr": "0.7 ** epoch"}]}'
run onecycle_accumulate 2 'optimizer=SGD(lr = 0.1, momentum = 0.9)
schedule=OneCycleLR(max_lr = 0.1)
accumulate=2' \
  '{"optimizer": ["SGD", {"lr": 0.1, "momentum": 0.9}], "schedule": ["OneCycleLR", {"max_lr": 0.1, "cycle_momentum": false}],
    "accumulate": 2}'
# the compiled SGD (momentum 0) with another lr runs fused into the train step; a momentum the train step was
# not compiled with, or a clipping (that never clips), runs on the runtime's optimizer
run sgd_fused 1 'optimizer=SGD(lr = 0.05)' '{"optimizer": ["SGD", {"lr": 0.05}]}'
run sgd_runtime 1 'optimizer=SGD(lr = 0.05)
clip_grad_norm=1e9' '{"optimizer": ["SGD", {"lr": 0.05}]}'
run sgd_momentum 1 'optimizer=SGD(lr = 0.05, momentum = 0.5, dampening = 0.1)' \
  '{"optimizer": ["SGD", {"lr": 0.05, "momentum": 0.5, "dampening": 0.1}]}'
grep -q 'fused' sgd_fused.out || fail "plain SGD did not run fused into the train step"
grep -q 'fused' sgd_runtime.out && fail "SGD with clipping ran fused"
grep -q 'fused' sgd_momentum.out && fail "SGD with a momentum the step was not compiled with ran fused"
echo "ok"
