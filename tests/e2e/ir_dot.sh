#!/usr/bin/env bash
# `lathe ir MODEL --dot`, the final graphs and those after fuse and autodiff, of every model in models/: Graphviz's
# dot must lay each one out as SVG. The final graphs draw their fused kernels as clusters with node labels naming
# model lines; a model file whose path holds a quote and a backslash still gives valid DOT.
source "$(dirname "$0")/common.bash"
command -v dot >/dev/null || skip "Graphviz's dot is not installed (apt-get install graphviz)"

svg_of() { # svg_of NAME: dot -Tsvg of $WORK/NAME.dot, which must succeed and hold one <svg per graph
  dot -Tsvg "$1.dot" >"$1.svg" 2>"$1.err" || { head -5 "$1.err"; fail "dot rejects the output of: $2"; }
  local graphs svgs
  graphs=$(grep -c '^digraph ' "$1.dot")
  svgs=$(grep -c '<svg' "$1.svg")
  [ "$graphs" -ge 1 ] || fail "no digraph in: $2"
  [ "$svgs" = "$graphs" ] || fail "$svgs SVG images for $graphs graphs: $2"
}

for model in "$LATHE_SOURCE_DIR"/models/*.lathe; do
  name=$(basename "$model" .lathe)
  for after in final fuse autodiff; do
    args=(ir "$model" --dot)
    [ "$after" = final ] || args+=(--after "$after")
    "$LATHE" "${args[@]}" >"$name.$after.dot" || fail "lathe ${args[*]}"
    svg_of "$name.$after" "lathe ${args[*]}"
  done
  # the final graphs are fused: kernels as clusters named after their root, nodes labelled with model lines
  grep -q '^  subgraph cluster_[0-9]* {' "$name.final.dot" || fail "$name: no fused kernel drawn as a cluster"
  grep -q 'label="kernel %[0-9]*: ' "$name.final.dot" || fail "$name: a cluster without its kernel's label"
  grep -q "\\\\n$name.lathe:[0-9]" "$name.final.dot" || fail "$name: no node labelled with its model line"
  ! grep -q 'subgraph cluster_' "$name.autodiff.dot" || fail "$name: clusters before fusion"
done

# every node of the text IR is drawn, and every edge
"$LATHE" ir "$LATHE_SOURCE_DIR/models/fashion_mlp.lathe" >fm.ir
"$LATHE" ir "$LATHE_SOURCE_DIR/models/fashion_mlp.lathe" --dot >fm.dot
nodes=$(grep -c '^  *%[0-9]* = ' fm.ir)
drawn=$(grep -c -E '^ *n[0-9]+ \[label=' fm.dot)
[ "$nodes" = "$drawn" ] || fail "fashion_mlp: $nodes IR nodes, $drawn drawn"
operands=$(grep -E '^  *%[0-9]* = ' fm.ir | sed 's/ :.*//; s/{[^}]*}//; s/"[^"]*"//g' | grep -o '%[0-9]*' | wc -l)
edges=$(grep -c -E '^  [nr][0-9_]+ -> n[0-9]+' fm.dot)
[ $((operands - nodes)) = "$edges" ] || fail "fashion_mlp: $((operands - nodes)) operands, $edges edges drawn"

# a model path with a quote, a backslash and a space is escaped in every label
odd='we"ird\ name'
mkdir -p "$odd"
cp "$LATHE_SOURCE_DIR/models/linear_regression.lathe" "$odd/li\"n\\e ar.lathe"
"$LATHE" ir "$odd/li\"n\\e ar.lathe" --dot >odd.dot || fail "lathe ir --dot of an oddly named file"
svg_of odd "lathe ir --dot of an oddly named file"
grep -q 'li\\"n\\\\e ar.lathe:' odd.dot || fail "the file name is not escaped in the labels"
echo "ok: every model's graphs render with dot"
