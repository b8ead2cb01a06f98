#!/usr/bin/env bash
# Installs the Debian packages the test suite runs (e.g. etcd-server for the
# kube-apiserver harness), only those that are missing, so a second run is a
# no-op. Needs root (CI and the dev machines run as root).
#
#   test/tools/install-debian-packages.sh etcd-server [more packages...]
set -euo pipefail
missing=()
for pkg in "$@"; do
  if ! dpkg -s "$pkg" 2>/dev/null | grep -q '^Status: install ok installed'; then
    missing+=("$pkg")
  fi
done
if [[ ${#missing[@]} -eq 0 ]]; then
  echo "install-debian-packages: all installed: $*"
  exit 0
fi
echo "install-debian-packages: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y --no-install-recommends "${missing[@]}"
