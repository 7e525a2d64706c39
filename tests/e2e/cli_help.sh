#!/usr/bin/env bash
# The lathe command's help and version: `lathe --help` names every command and the exit statuses, each of
# compile, check, ir and opt has its own --help with examples, --version prints the project's version, and the
# documented exit statuses hold (0 help, 1 an input error, 2 bad usage).
source "$(dirname "$0")/common.bash"

"$LATHE" --help >help.txt || fail "lathe --help exits $?"
for cmd in compile check ir opt sweep run; do
  grep -q -E "^  $cmd " help.txt || fail "lathe --help does not list $cmd"
done
grep -q '^exit status: 0 success, 1 .*, 2 bad usage' help.txt || fail "lathe --help without the exit statuses"

for cmd in compile check ir opt; do
  "$LATHE" $cmd --help >cmd.txt || fail "lathe $cmd --help exits $?"
  head -1 cmd.txt | grep -q "^usage: lathe $cmd " || fail "lathe $cmd --help: first line $(head -1 cmd.txt)"
  grep -q '^examples:$' cmd.txt || fail "lathe $cmd --help has no examples"
  grep -q "^  lathe $cmd " cmd.txt || fail "lathe $cmd --help: no example running lathe $cmd"
  grep -q '^exit status: 0 success' cmd.txt || fail "lathe $cmd --help: no exit statuses"
  cmp -s cmd.txt help.txt && fail "lathe $cmd --help prints the general help"
done
"$LATHE" ir --help | grep -- '--stats' >/dev/null || fail "lathe ir --help does not describe --stats"

version=$(sed -n 's/^project(lathe VERSION \([0-9.]*\).*/\1/p' "$LATHE_SOURCE_DIR/CMakeLists.txt")
[ "$("$LATHE" --version)" = "lathe $version" ] || fail "lathe --version: $("$LATHE" --version), expected $version"

# exit statuses: 2 bad usage, 1 an input error
st() { set +e; "$@" >/dev/null 2>&1; echo $?; set -e; }
[ "$(st "$LATHE")" = 2 ] || fail "no command: not 2"
[ "$(st "$LATHE" ir "$LATHE_SOURCE_DIR/models/fashion_mlp.lathe" --bogus)" = 2 ] || fail "unknown option: not 2"
[ "$(st "$LATHE" frobnicate x.lathe)" = 2 ] || fail "unknown command: not 2"
[ "$(st "$LATHE" check missing.lathe)" = 1 ] || fail "a missing model file: not 1"
echo "ok: help, version and exit statuses"
