//go:build tools

// Test-only: controller-gen (sigs.k8s.io/controller-tools, Apache-2.0) and the
// prometheus-operator API types (Apache-2.0). build-binaries.sh runs
// controller-gen over the types to produce the monitoring.coreos.com CRDs
// (ServiceMonitor, PodMonitor, PrometheusRule, ...) the way prometheus-operator
// makes its own, so the chart tests can install them into the test
// kube-apiserver. Never shipped.
package tools

import (
	_ "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	_ "sigs.k8s.io/controller-tools/cmd/controller-gen"
)
