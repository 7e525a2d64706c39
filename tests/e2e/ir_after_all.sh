# lathe ir --after all: the IR after every pass of the pipeline, in order, each headed by a comment; the last
# dump is the final IR that `lathe ir` prints; with --dot or --stats it is refused.
source "$(dirname "$0")/common.bash"
m="$LATHE_SOURCE_DIR/models/fashion_mlp.lathe"
"$LATHE" ir "$m" --after all > all.txt
got=$(grep '^# \*\*\* IR after' all.txt | awk '{print $5}' | tr '\n' ' ')
[ "$got" = "lower autodiff optimizer simplify cse layout dce fuse memplan " ] || fail "pass headers: '$got'"
"$LATHE" ir "$m" > final.txt
sed -n '/^# \*\*\* IR after memplan/,$p' all.txt | tail -n +2 > last.txt
cmp -s last.txt final.txt || fail "the dump after memplan differs from lathe ir's final IR"
"$LATHE" ir "$m" --after autodiff > autodiff.txt
sed -n '/^# \*\*\* IR after autodiff/,/^# \*\*\* IR after optimizer/p' all.txt | sed '1d;$d' | sed '${/^$/d}' > mid.txt
cmp -s mid.txt autodiff.txt || fail "the dump after autodiff differs from --after autodiff"
expect_fail "$LATHE" ir "$m" --after all --dot
expect_msg "name one pass"
echo "ir --after all: ok"
