#!/usr/bin/env bash
# Builds the test-only servers from their Go modules and caches them, so the
# second run does not rebuild. Each tool has a small Go module in
# test/tools/<tool>/ that pins its version; a binary is rebuilt only when that
# module's go.mod or go.sum changes. Nothing built here is ever shipped.
#
#   TTEOK_TOOLS_CACHE  where binaries are kept (default ~/.cache/tteok)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${TTEOK_TOOLS_CACHE:-$HOME/.cache/tteok}"
mkdir -p "$cache/bin"

# Roughly how long a first build takes on 2 cores (printed before it starts, so a long one never looks stuck).
build_time() {
  case "$1" in
    kube-apiserver) echo "about 10 minutes" ;;
    weed) echo "about 4.5 minutes" ;;
    kubelet | kube-controller-manager | kube-scheduler | kube-proxy) echo "about 4 minutes, after kube-apiserver" ;;
    *) echo "a minute or two" ;;
  esac
}

# build <tool dir> <binary name> <package> [extra -ldflags]
build() {
  local dir="$here/$1" name="$2" pkg="$3" ldflags="${4:-}"
  local stamp
  stamp="$( (cat "$dir/go.mod" "$dir/go.sum" 2>/dev/null; [[ -z "$ldflags" ]] || echo "$ldflags") | sha256sum | cut -c1-16)"
  if [[ -x "$cache/bin/$name" && "$(cat "$cache/bin/$name.stamp" 2>/dev/null)" == "$stamp" ]]; then
    echo "build-binaries: $name is cached ($stamp)"
    return
  fi
  echo "build-binaries: building $name from $pkg ($(build_time "$name") on 2 cores)"
  local started=$SECONDS
  (cd "$dir" && CGO_ENABLED=0 go build -mod=mod -trimpath -ldflags="-s -w${ldflags:+ $ldflags}" -o "$cache/bin/$name.tmp" "$pkg")
  mv "$cache/bin/$name.tmp" "$cache/bin/$name"
  echo "$stamp" > "$cache/bin/$name.stamp"
  echo "build-binaries: built $name in $((SECONDS - started)) s"
}

# kube-apiserver reports (in /version, and for its compatibility checks) the
# version stamped here, as Kubernetes' own release build does; without it, it
# says v0.0.0-master.
kube_version_ldflags() {
  local v
  v="$(cd "$here/kube-apiserver" && go list -mod=mod -m -f '{{.Version}}' k8s.io/kubernetes)"
  local major="${v#v}"; major="${major%%.*}"
  local minor="${v#v*.}"; minor="${minor%%.*}"
  local pkg=k8s.io/component-base/version
  echo "-X $pkg.gitVersion=$v -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
}

# generate_monitoring_crds: the monitoring.coreos.com CRDs (ServiceMonitor,
# PodMonitor, PrometheusRule, ...) from prometheus-operator's Go API types with
# controller-gen, into $cache/crds/monitoring.coreos.com; regenerated only when
# the pinned module changes.
generate_monitoring_crds() {
  local dir="$here/prometheus-operator-crds" out="$cache/crds/monitoring.coreos.com"
  build prometheus-operator-crds controller-gen sigs.k8s.io/controller-tools/cmd/controller-gen
  local stamp
  stamp="$(cat "$dir/go.mod" "$dir/go.sum" | sha256sum | cut -c1-16)"
  if [[ -d "$out" && "$(cat "$out.stamp" 2>/dev/null)" == "$stamp" ]]; then
    echo "build-binaries: monitoring.coreos.com CRDs are cached ($stamp)"
    return
  fi
  rm -rf "$out.tmp" && mkdir -p "$out.tmp"
  (cd "$dir" && "$cache/bin/controller-gen" crd:crdVersions=v1,maxDescLen=0 \
    paths=github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1 output:crd:dir="$out.tmp")
  rm -rf "$out" && mv "$out.tmp" "$out"
  echo "$stamp" > "$out.stamp"
  echo "build-binaries: generated $(ls "$out" | wc -l) monitoring.coreos.com CRDs"
}

tools="${*:-weed}"
for tool in $tools; do
  case "$tool" in
    weed) build seaweedfs weed github.com/seaweedfs/seaweedfs/weed ;;
    kube-apiserver) build kube-apiserver kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver "$(kube_version_ldflags)" ;;
    # The rest of a single-node cluster (harness/cluster.ts), from the
    # same pinned module as kube-apiserver so the versions always match.
    kubelet | kube-controller-manager | kube-scheduler | kube-proxy)
      build kube-apiserver "$tool" "k8s.io/kubernetes/cmd/$tool" "$(kube_version_ldflags)" ;;
    kubeconform) build kubeconform kubeconform github.com/yannh/kubeconform/cmd/kubeconform ;;
    monitoring-crds) generate_monitoring_crds ;;
    *) echo "build-binaries: unknown tool $tool" >&2; exit 2 ;;
  esac
done
