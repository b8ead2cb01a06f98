//go:build tools

// Test-only: builds kubeconform (Apache-2.0), which validates the rendered
// Helm chart against JSON schemas generated from the test kube-apiserver's
// OpenAPI (test/chart/cluster.test.ts). Never shipped; see
// test/tools/build-binaries.sh.
package tools

import _ "github.com/yannh/kubeconform/cmd/kubeconform"
