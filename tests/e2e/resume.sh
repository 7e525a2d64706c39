# --resume continues bit for bit: 1 epoch + resume for a 2nd gives the parameters of 2 uninterrupted epochs,
# with shuffling on.
source "$(dirname "$0")/common.bash"
need_data
"$LATHE" compile "$LATHE_SOURCE_DIR/models/fashion_mlp.lathe" -o mlp || fail "compile"
common=(--data "$DATA" --limit 3000 --lr 0.05 --shuffle --seed 7)
./mlp train "${common[@]}" --epochs 2 --checkpoint-dir a >/dev/null || fail "train 2 epochs"
./mlp train "${common[@]}" --epochs 1 --checkpoint-dir b >/dev/null || fail "train 1 epoch"
cp b/last.safetensors one_epoch.safetensors
./mlp train "${common[@]}" --epochs 2 --checkpoint-dir b --resume b/last.safetensors >/dev/null || fail "resume"
cmp a/last.safetensors b/last.safetensors || fail "resumed run differs from the uninterrupted one"
./mlp train "${common[@]}" --epochs 1 --seed 8 --checkpoint-dir c >/dev/null || fail "train seed 8"
cmp -s one_epoch.safetensors c/last.safetensors && fail "different seeds gave identical parameters"
echo "ok"
