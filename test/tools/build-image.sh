#!/usr/bin/env bash
# Builds tteok's container image from the repository's Dockerfile with no
# container registry, for the end-to-end cluster test (test/e2e/cluster.test.ts):
#
# 1. The base image the Dockerfile's FROM names (node:24-trixie-slim) is made
#    here: a minimal Debian 13 root filesystem from Debian's own packages
#    (debootstrap --variant=minbase) plus the pinned Node 24 that
#    test/tools/install-node.sh installs (the official Linux build, from the npm
#    registry) in /usr/local, as the public image has it. It is cached under
#    $cache/images and rebuilt only when its inputs change (this script, the
#    Debian suite, the Node pin).
# 2. The project image is built from ./Dockerfile with Debian's buildah, pulls
#    disabled (so FROM resolves to the local base image), layers cached in
#    buildah's own storage under $cache/containers.
#    The Dockerfile's Debian ffmpeg is left out (FFMPEG_PACKAGE=""): instead the
#    static ffmpeg 9 the tests use (test/tools/install-ffmpeg9.sh, in the tools
#    cache) is added as one more layer at /usr/local/bin/ffmpeg, for the
#    transcoder role; no apt in the build, and the other layers stay cached.
# 3. It is written as a docker-archive to $cache/images/tteok-e2e.tar, which the
#    cluster harness imports into containerd (`ctr images import`).
#
# Also the pod sandbox ("pause") image the test node's containerd needs:
# test/tools/pause/pause.c, built static, in $cache/images/pause.tar.
#
#   test/tools/build-image.sh [pause] [tteok]     (default: both)
#   TTEOK_TOOLS_CACHE  where everything is kept (default ~/.cache/tteok)
#
# Needs root and the Debian packages debootstrap and buildah
# (test/tools/install-debian-packages.sh; the Makefile's deps-e2e does both).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cache="${TTEOK_TOOLS_CACHE:-$HOME/.cache/tteok}"
tag=tteok:e2e
pause_tag=localhost/tteok-pause:1
suite=trixie
base_tag=docker.io/library/node:24-trixie-slim
mkdir -p "$cache/images" "$cache/containers"

# buildah with storage of its own: nothing in /var/lib/containers is touched.
# overlay, not vfs: vfs copies the whole root filesystem for every layer (tens
# of GB for this Dockerfile). chroot isolation: RUN steps need no runc, no user
# namespace and no cgroup setup.
bah() {
  buildah --root "$cache/containers/storage" --runroot "$cache/containers/run" --storage-driver overlay "$@"
}

bash "$here/install-node.sh" >/dev/null
node_home="$(readlink -f "$cache/node")"
build_base() {
  if [[ "$(cat "$cache/images/node-base.stamp" 2>/dev/null)" == "$base_stamp" ]] && bah inspect --type image "$base_tag" >/dev/null 2>&1; then
    echo "build-image: base $base_tag is cached ($base_stamp)"
    return
  fi
  local started=$SECONDS rootfs="$cache/images/rootfs.tmp"
  echo "build-image: making $base_tag from Debian $suite (debootstrap) and $(basename "$node_home")"
  rm -rf "$rootfs"
  debootstrap --variant=minbase "$suite" "$rootfs" http://deb.debian.org/debian >"$cache/images/debootstrap.log" 2>&1 \
    || { tail -20 "$cache/images/debootstrap.log" >&2; exit 1; }
  # Slim, as the public image: no apt lists, caches, docs or man pages.
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb \
    "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/* "$rootfs"/var/log/*
  cp -a "$node_home/bin" "$node_home/lib" "$node_home/include" "$rootfs/usr/local/"
  chroot "$rootfs" /usr/local/bin/node --version >/dev/null
  local ctr
  ctr="$(bah from scratch)"
  bah copy "$ctr" "$rootfs/" / >/dev/null
  bah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env NODE_VERSION="$(chroot "$rootfs" /usr/local/bin/node --version | tr -d v)" \
    --cmd node "$ctr"
  bah commit --quiet --rm "$ctr" "$base_tag" >/dev/null
  rm -rf "$rootfs"
  echo "$base_stamp" > "$cache/images/node-base.stamp"
  echo "build-image: made $base_tag in $((SECONDS - started)) s"
}

# The base image's inputs: how it is made (this function's text), the suite, the Node pin.
base_stamp="$( (declare -f build_base; echo "$suite"; cat "$node_home/tteok.stamp") | sha256sum | cut -c1-16)"

build_pause() {
  local stamp archive="$cache/images/pause.tar"
  stamp="$( (declare -f build_pause; cat "$here/pause/pause.c") | sha256sum | cut -c1-16)"
  if [[ -f "$archive" && "$(cat "$archive.stamp" 2>/dev/null)" == "$stamp" ]]; then
    echo "build-image: $pause_tag is cached ($stamp)"
    return
  fi
  local work ctr
  work="$(mktemp -d)"
  gcc -static -Os -s -o "$work/pause" "$here/pause/pause.c"
  ctr="$(bah from scratch)"
  bah copy "$ctr" "$work/pause" /pause >/dev/null
  bah config --entrypoint '["/pause"]' --cmd '' "$ctr"
  bah commit --quiet --rm "$ctr" "$pause_tag" >/dev/null
  rm -f "$archive.tmp"
  bah push --quiet "$pause_tag" "docker-archive:$archive.tmp:$pause_tag"
  mv "$archive.tmp" "$archive"
  echo "$stamp" > "$archive.stamp"
  rm -rf "$work"
  echo "build-image: built $pause_tag into $archive"
}

build_project() {
  local started=$SECONDS archive="$cache/images/tteok-e2e.tar"
  echo "build-image: building $tag from $repo/Dockerfile (buildah, no pulls)"
  # npm ci in the build's RUN steps trusts what this machine trusts (a TLS-
  # inspecting proxy's CA, say): the machine's CA bundle and an npmrc naming it
  # are mounted for the RUN steps only, never stored in the image.
  local trust=()
  if [[ -f /etc/ssl/certs/ca-certificates.crt ]]; then
    local npmrc="$cache/images/build-npmrc"
    echo "cafile=/run/tteok-build-ca.crt" > "$npmrc"
    trust=(--volume /etc/ssl/certs/ca-certificates.crt:/run/tteok-build-ca.crt:ro --volume "$npmrc:/usr/local/etc/npmrc:ro")
  fi
  bah bud --quiet --layers --pull-never --isolation chroot --network host "${trust[@]}" \
    --build-arg NODE_IMAGE="$base_tag" --build-arg FFMPEG_PACKAGE= -t "$tag" -f "$repo/Dockerfile" "$repo" >/dev/null
  # The transcoder's ffmpeg: the tests' static ffmpeg 9, one more layer on top.
  bash "$here/install-ffmpeg9.sh" >/dev/null
  local ffmpeg ctr
  ffmpeg="$(readlink -f "$cache/bin/ffmpeg9")"
  ctr="$(bah from --pull=never "$tag")"
  bah copy --chown 0:0 --chmod 0755 "$ctr" "$ffmpeg" /usr/local/bin/ffmpeg >/dev/null
  bah commit --quiet --rm "$ctr" "$tag" >/dev/null
  rm -f "$archive.tmp"
  bah push --quiet "$tag" "docker-archive:$archive.tmp:$tag"
  mv "$archive.tmp" "$archive"
  echo "build-image: built $tag into $archive in $((SECONDS - started)) s"
}

# Two builds at once (make e2e and a test run) must not share buildah's storage.
exec 9>"$cache/images/build.lock"
flock 9
for what in ${*:-pause tteok}; do
  case "$what" in
    pause) build_pause ;;
    tteok) build_base; build_project ;;
    *) echo "build-image: unknown image $what (pause, tteok)" >&2; exit 2 ;;
  esac
done
