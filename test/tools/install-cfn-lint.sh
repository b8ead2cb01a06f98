#!/usr/bin/env bash
# Installs cfn-lint (MIT, from PyPI) into a virtualenv of its own for the
# CloudFormation template check (test/manifests-aws.test.ts), and links it as
# ${TTEOK_TOOLS_CACHE:-~/.cache/tteok}/bin/cfn-lint. Rebuilt only when the pin
# or the Python interpreter changes, so a second run is a no-op.
#
#   TTEOK_TOOLS_CACHE  where tools are kept (default ~/.cache/tteok)
set -euo pipefail
version=1.58.0
cache="${TTEOK_TOOLS_CACHE:-$HOME/.cache/tteok}"
venv="$cache/venv"
python="$(command -v python3)"
stamp="cfn-lint==$version $("$python" -c 'import sys; print(sys.version.split()[0])')"
mkdir -p "$cache/bin"

if [[ -x "$venv/bin/cfn-lint" && "$(cat "$venv/tteok.stamp" 2>/dev/null)" == "$stamp" ]]; then
  echo "install-cfn-lint: cfn-lint is cached ($stamp)"
else
  echo "install-cfn-lint: creating $venv with cfn-lint==$version"
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "cfn-lint==$version"
  echo "$stamp" > "$venv/tteok.stamp"
fi
ln -sf "$venv/bin/cfn-lint" "$cache/bin/cfn-lint"
echo "install-cfn-lint: $("$cache/bin/cfn-lint" --version)"
