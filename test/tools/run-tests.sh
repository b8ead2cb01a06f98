#!/usr/bin/env bash
# Runs the tap suite and ends with one plain line, "tests: N passed, N failed",
# that CI systems read without knowing tap. tap's exit code is kept.
set -uo pipefail
# The suite runs on the Node that is first on PATH; make puts the pinned Node 24
# there (test/tools/install-node.sh). An older one is refused rather than
# failing somewhere in the middle.
node_version="$(node --version 2>/dev/null)"
node_major="${node_version#v}"; node_major="${node_major%%.*}"
echo "run-tests: Node ${node_version:-(none)} ($(command -v node))"
if ! [[ "$node_major" =~ ^[0-9]+$ ]] || (( node_major < 24 )); then
  echo "run-tests: needs Node 24 or newer first on PATH (see README, Node); \`make test\` installs it" >&2
  exit 1
fi
if [[ $# -eq 0 ]]; then
  echo "run-tests: the whole tap suite, one file at a time (about 20 minutes once the tools are cached; the first run also builds the end-to-end test's image, about 4 minutes)"
else
  echo "run-tests: $*"
fi
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
npx tap "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
summary="$(grep -E '^# \{ total: ' "$log" | tail -n 1)"
pass="$(sed -nE 's/.*pass: ([0-9]+).*/\1/p' <<<"$summary")"
fail="$(sed -nE 's/.*fail: ([0-9]+).*/\1/p' <<<"$summary")"
# The failed tests again, last, so a CI log cut to its tail still names them,
# then each failed assertion with its diagnostics (tap's YAML block: what was
# found, what was wanted), so the log says why without a second run.
if [[ "${fail:-0}" != "0" ]]; then
  echo "run-tests: failed:"
  grep -E '^ *not ok ' "$log" | head -n 40
  echo "run-tests: why (each failed assertion's diagnostics, 25 lines at most):"
  awk '
    /^ *not ok / { block = 1; shown = 0; print; next }
    block && /^ *(ok|not ok|# Subtest:|1\.\.)/ { block = 0 }
    block && shown < 25 { print; shown++ }
    block && /^ *\.\.\.$/ { block = 0 }
  ' "$log" | head -n 300
fi
echo "tests: ${pass:-0} passed, ${fail:-0} failed"
if [[ $status -eq 0 && -z "$pass" ]]; then
  echo "run-tests: tap printed no summary" >&2
  exit 1
fi
exit "$status"
