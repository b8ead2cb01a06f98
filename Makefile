# tteok: `make run` to try it on one machine, `make test` to check everything.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# Debian packages the tests drive for real: ffmpeg publishes RTMP and probes HLS;
# etcd backs the real kube-apiserver; prometheus provides promtool, which checks
# the chart's alert rules.
DEBIAN_TEST_PACKAGES := ffmpeg etcd-server prometheus
# Test-only servers and tools built from their Go modules and cached (test/tools/build-binaries.sh);
# kubeconform and the monitoring.coreos.com CRDs are for the Helm chart tests.
GO_TEST_TOOLS := weed kube-apiserver kubeconform monitoring-crds

.PHONY: help deps node_modules test typecheck build run bench clean

help:
	@echo "make run    start tteok on this machine (ingest + local origin), print OBS settings"
	@echo "make test   install everything the tests need, type-check, run the whole suite"
	@echo "make build  compile TypeScript to dist/"
	@echo "make bench  measure latency, density and throughput against nginx-rtmp and Fastify (prints tables)"

node_modules: package-lock.json
	npm ci --no-audit --no-fund
	@touch node_modules

deps:
	npm ci --no-audit --no-fund
	bash test/tools/install-debian-packages.sh $(DEBIAN_TEST_PACKAGES)
	bash test/tools/build-binaries.sh $(GO_TEST_TOOLS)
	bash test/tools/install-helm-kubectl.sh
	bash test/tools/install-cfn-lint.sh

typecheck:
	npx tsc --noEmit -p tsconfig.json

test: deps typecheck
	bash test/tools/run-tests.sh

build: node_modules
	npx tsc -p tsconfig.build.json

run: node_modules
	npx tsx bin/tteok.ts local

# Installs its peers (nginx with the RTMP module) and the S3 test server itself.
bench: node_modules
	bash test/tools/build-binaries.sh weed
	npx tsx bench/run.ts

clean:
	rm -rf dist .tteok test/artifacts
