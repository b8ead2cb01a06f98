# tteok: `make run` to try it on one machine, `make test` to check everything.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# Debian packages the tests drive for real: ffmpeg publishes RTMP and probes HLS;
# etcd backs the real kube-apiserver.
DEBIAN_TEST_PACKAGES := ffmpeg etcd-server
# Test-only servers built from their Go modules and cached (test/tools/build-binaries.sh).
GO_TEST_TOOLS := weed kube-apiserver

.PHONY: help deps node_modules test typecheck build run clean

help:
	@echo "make run    start tteok on this machine (ingest + local origin), print OBS settings"
	@echo "make test   install everything the tests need, type-check, run the whole suite"
	@echo "make build  compile TypeScript to dist/"

node_modules: package-lock.json
	npm ci --no-audit --no-fund
	@touch node_modules

deps:
	npm ci --no-audit --no-fund
	bash test/tools/install-debian-packages.sh $(DEBIAN_TEST_PACKAGES)
	bash test/tools/build-binaries.sh $(GO_TEST_TOOLS)

typecheck:
	npx tsc --noEmit -p tsconfig.json

test: deps typecheck
	bash test/tools/run-tests.sh

build: node_modules
	npx tsc -p tsconfig.build.json

run: node_modules
	npx tsx bin/tteok.ts local

clean:
	rm -rf dist .tteok test/artifacts
