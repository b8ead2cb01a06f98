#!/usr/bin/env bash
# Installs the Node.js release tteok runs on (Node 24 LTS) into
# ${TTEOK_TOOLS_CACHE:-~/.cache/tteok}/node-v<version>-<platform>, with the npm
# that release ships, and points ${TTEOK_TOOLS_CACHE:-~/.cache/tteok}/node at
# it. The Makefile puts node/bin first on PATH for every target, so `make run`,
# `make test` and `make bench` (and everything they spawn: npx, tsx, tap, the
# tests' child processes) run on this Node whatever the machine's own `node` is.
#
# Both come from the npm registry, pinned: node-linux-<arch> is the official
# Linux build repackaged (bin/node, headers), the same package the registry's
# `node` package installs as its dependency; we take it directly so that no
# install script runs and the version is exact. Each tarball is fetched with
# `npm pack` (npm checks it against the registry's integrity), or with curl
# where there is no npm yet (a machine without any Node), and then checked
# against the sha512 pinned here. A second run with the same pins is a no-op.
#
#   TTEOK_TOOLS_CACHE  where tools are kept (default ~/.cache/tteok)
set -euo pipefail
node_version=24.22.3
# The npm bundled with Node $node_version (its CHANGELOG: "upgrade npm to 11.19.1").
npm_version=11.19.1
npm_integrity=sha512-ztsxKxt/kkIaAs+2i0GU6I+DRmUdrNasxTZKJe9TCdSjKxlhah/4r/hl5ygMD6XAg1qZ9c2TNomR4qgOydp10g==
case "$(uname -sm)" in
  "Linux x86_64")
    platform=linux-x64
    node_integrity=sha512-KHsob+Fv9YerATvYujMbiyJqnRCvLtrcr/eTNqRqiOSGp97EOiRP1yP47+knGgQ/xnc3XY8xzkW587dlZzNqRA== ;;
  "Linux aarch64")
    platform=linux-arm64
    node_integrity=sha512-IZx0J52/1NDwAsY2iyWR9nlPIYuYviTWetjj8+ElvYQh2+XRhLfCfkbFEF/2O5vGI2hcUbyPNHV+nz342FbJXw== ;;
  *)
    # No pinned build for this platform: a Node 24 the machine already has will do.
    have="$(node --version 2>/dev/null || true)"
    major="${have#v}"; major="${major%%.*}"
    if [[ "$major" =~ ^[0-9]+$ ]] && (( major >= 24 )); then
      echo "install-node: no pinned build for $(uname -sm); using the machine's node $have"
      exit 0
    fi
    echo "install-node: no pinned Node build for $(uname -sm); install Node $node_version yourself and put it first on PATH" >&2
    exit 1 ;;
esac

cache="${TTEOK_TOOLS_CACHE:-$HOME/.cache/tteok}"
name="node-v$node_version-$platform"
home="$cache/$name"
link="$cache/node"
stamp="node-$platform@$node_version $node_integrity npm@$npm_version $npm_integrity"
mkdir -p "$cache"

cached() {
  [[ -x "$link/bin/node" && "$(cat "$link/tteok.stamp" 2>/dev/null)" == "$stamp" ]]
}
if cached; then
  echo "install-node: Node $node_version is cached ($link)"
  exit 0
fi

# Two makes starting at once (CI, a second terminal) must not unpack over each other.
exec 9>"$cache/node.lock"
flock 9
if cached; then
  echo "install-node: Node $node_version is cached ($link)"
  exit 0
fi

work="$(mktemp -d "$cache/node-install.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# fetch <package> <version> <integrity>: leaves the checked tarball at $work/<package>.tgz
fetch() {
  local pkg="$1" version="$2" integrity="$3" tgz="$work/$1.tgz"
  if command -v npm >/dev/null && npm --version >/dev/null 2>&1; then
    (cd "$work" && npm pack --silent "$pkg@$version" >/dev/null)
    mv "$work/$pkg-$version.tgz" "$tgz"
  else
    local registry="${npm_config_registry:-https://registry.npmjs.org/}"
    curl -fsSL --retry 3 -o "$tgz" "${registry%/}/$pkg/-/$pkg-$version.tgz"
  fi
  local actual
  actual="sha512-$(openssl dgst -sha512 -binary "$tgz" | openssl base64 -A)"
  if [[ "$actual" != "$integrity" ]]; then
    echo "install-node: integrity mismatch for $pkg@$version: got $actual, pinned $integrity" >&2
    exit 1
  fi
}

started=$SECONDS
echo "install-node: fetching node-$platform@$node_version and npm@$npm_version from the npm registry"
fetch "node-$platform" "$node_version" "$node_integrity"
fetch npm "$npm_version" "$npm_integrity"

# The layout of Node's own release tarball: bin/{node,npm,npx}, lib/node_modules/npm,
# include/node (the headers node-gyp builds native addons against).
tree="$work/$name"
mkdir -p "$tree/lib/node_modules/npm"
tar -xzf "$work/node-$platform.tgz" -C "$tree" --strip-components=1 package/bin package/include package/share package/LICENSE
tar -xzf "$work/npm.tgz" -C "$tree/lib/node_modules/npm" --strip-components=1
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$tree/bin/npm"
ln -s ../lib/node_modules/npm/bin/npx-cli.js "$tree/bin/npx"
actual="$("$tree/bin/node" --version)"
if [[ "$actual" != "v$node_version" ]]; then
  echo "install-node: the unpacked node reports $actual, expected v$node_version" >&2
  exit 1
fi
echo "$stamp" > "$tree/tteok.stamp"

rm -rf "$home"
mv "$tree" "$home"
# Switch the link in one rename, so a running make never sees it missing.
ln -sfn "$name" "$work/node.link"
mv -Tf "$work/node.link" "$link"
echo "install-node: Node $("$link/bin/node" --version) with npm $(PATH="$link/bin:$PATH" "$link/bin/npm" --version) in $home ($((SECONDS - started)) s)"
