# Regression tests for the bugs that static analysis (tests/analysis/cppcheck.sh) found, each as a user would
# meet it.
source "$(dirname "$0")/common.bash"

# A call whose argument is exactly at the nesting limit: the call's own level is one too many. The parser
# checked the call for NULL only after reading its argument count through it (a crash, frontend/parse.c).
python3 - <<'PY'
chain = "+".join(["x"] * 256)  # a chain of 255 additions: the deepest expression allowed
open("deep.lathe", "w").write("def f(x) {\n    return x\n}\nmodel M {\n    forward(x: f32[N, 2]) -> f32[N, 2] {\n"
                              f"        return f({chain})\n    }}\n}}\n")
PY
rc=0
"$LATHE" compile deep.lathe --mem-report >/dev/null 2>err || rc=$?
[ "$rc" -eq 1 ] || { cat err; fail "lathe compile exited with $rc, not 1 (a crash is > 128)"; }
grep -q -E 'deep.lathe:6:[0-9]+: error: expression nested too deeply' err || { cat err; fail "no nesting error"; }
echo "ok"
