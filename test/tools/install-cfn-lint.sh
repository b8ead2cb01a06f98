#!/usr/bin/env bash
# Installs cfn-lint (MIT, from PyPI) into a virtualenv of its own for the
# CloudFormation template check (test/manifests/aws.test.ts), and links it as
# ${TTEOK_TOOLS_CACHE:-~/.cache/tteok}/bin/cfn-lint. Rebuilt only when the pin
# or the Python interpreter changes (test/tools/pypi-venv.sh), so a second run
# is a no-op.
#
#   TTEOK_TOOLS_CACHE  where tools are kept (default ~/.cache/tteok)
set -euo pipefail
version=1.58.0
cache="${TTEOK_TOOLS_CACHE:-$HOME/.cache/tteok}"
venv="$cache/venv"
source "$(dirname "$0")/pypi-venv.sh"
mkdir -p "$cache/bin"

pypi_venv install-cfn-lint "$venv" "cfn-lint==$version" cfn-lint
ln -sf "$venv/bin/cfn-lint" "$cache/bin/cfn-lint"
echo "install-cfn-lint: $("$cache/bin/cfn-lint" --version)"
