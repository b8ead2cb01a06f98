//go:build tools

// Package tools pins the Kubernetes commands build-binaries.sh builds from
// k8s.io/kubernetes (kube-apiserver for harness/kube.ts; the rest of a
// single-node cluster for harness/cluster.ts) so `go mod tidy` keeps them.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
