# chaostoolkit-registry: everything installs itself. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
CACHE ?= $(HOME)/.cache/chaostoolkit-registry
TOXIPROXY_VERSION := 2.5.0
TOXIPROXY := $(CACHE)/toxiproxy-$(TOXIPROXY_VERSION)/server
# Registry implementations the sandbox can run (`sandbox up --implementation ...`).
# Distribution v3 is built from tools/distribution-registry: its own registry command without
# the cloud storage drivers (about half the compile); the version is the one its go.mod requires.
DISTRIBUTION3_VERSION := 3.1.2
DISTRIBUTION3 := $(CACHE)/distribution-$(DISTRIBUTION3_VERSION)/registry
CRANE_VERSION := 0.22.1
CRANE := $(CACHE)/crane-$(CRANE_VERSION)/crane
# What a ggcr replica runs: go-containerregistry's pkg/registry with the referrers API on
# (tools/ggcr-registry; `crane registry serve` has no flag for it). Cached by ggcr version, built
# again when its source is newer than the binary.
GGCR_REGISTRY := $(CACHE)/ggcr-registry-$(CRANE_VERSION)/ggcr-registry
# The sandbox's second site (`sandbox up --second-site`): regclient's regsync.
REGSYNC_VERSION := 0.11.7
REGSYNC := $(CACHE)/regsync-$(REGSYNC_VERSION)/regsync
# cosign, in the tests only: it verifies what the sandbox signs (in Python) and signs an image of its own.
COSIGN_VERSION := 3.1.3
COSIGN := $(CACHE)/cosign-$(COSIGN_VERSION)/cosign
# No DWARF, neither compiled nor linked: nothing here debugs these tools, and a cold compile
# takes 0.86x the CPU without it (bench/go_build.py). The same flags as the test bed's builds.
GO_BUILD_FLAGS := -trimpath -ldflags="-s -w" -gcflags=all=-dwarf=false
APT_PACKAGES := docker-registry nginx-light skopeo curl chromium containerd runc containernetworking-plugins busybox-static
# The sandbox's Prometheus (and promtool), without its recommended node exporter, a daemon.
APT_NO_RECOMMENDS := prometheus
# Commands that prove the Debian packages above are installed.
APT_COMMANDS := /usr/bin/docker-registry /usr/sbin/nginx /usr/bin/skopeo /usr/bin/curl /usr/bin/chromium \
	/usr/bin/containerd /usr/sbin/runc /usr/lib/cni/bridge /bin/busybox /usr/bin/prometheus /usr/bin/promtool
UV_VERSION := 0.13.9
UV_DIR := $(CACHE)/uv-$(UV_VERSION)
UV := $(UV_DIR)/bin/uv
VENV_STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | sha256sum | cut -c1-12)
EXPERIMENT ?= experiments/registry-latency.yaml
export CHAOSREGISTRY_TOXIPROXY := $(TOXIPROXY)
export CHAOSREGISTRY_DISTRIBUTION3 := $(DISTRIBUTION3)
export CHAOSREGISTRY_CRANE := $(CRANE)
export CHAOSREGISTRY_GGCR_REGISTRY := $(GGCR_REGISTRY)
export CHAOSREGISTRY_REGSYNC := $(REGSYNC)
export CHAOSREGISTRY_COSIGN := $(COSIGN)

.PHONY: help setup gameday test test-unit pytest-all lint typecheck docs bench clean go-tools cluster-binaries

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-11s %s\n", $$1, $$2}'

# The Go tools build side by side (-j3): on a cold machine much of a build is module downloads
# and single-threaded links that leave a core idle. Go's caches are safe to share.
GO_TOOLS := $(TOXIPROXY) $(DISTRIBUTION3) $(CRANE) $(GGCR_REGISTRY) $(REGSYNC) $(COSIGN)

setup: $(VENV_STAMP) .apt-installed ## install everything (apt packages, venv, Go tools); idempotent
	@$(MAKE) -s --no-print-directory -j3 go-tools

go-tools: $(GO_TOOLS)

# The Kubernetes test bed's binaries (etcd, Kubernetes, Chaos Mesh) and Chaos Mesh's CRDs, cached
# by version, for the cluster tier. `make pytest-all` builds them alongside the Go tools, so a cold
# run overlaps the two, and no test cluster generates the CRDs while the tests run.
cluster-binaries: $(VENV_STAMP)
	$(BIN)/chaosregistry cluster build

# Re-checked when this Makefile changes (a new package in the lists above).
.apt-installed: Makefile
	@missing=0; for c in $(APT_COMMANDS); do [ -x $$c ] || missing=1; done; \
	if [ $$missing = 1 ]; then \
		echo "installing Debian packages: $(APT_PACKAGES) $(APT_NO_RECOMMENDS)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_PACKAGES) >/dev/null && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(APT_NO_RECOMMENDS) >/dev/null; \
	fi
	@touch $@

# uv installs the venv: from its cache (warm) in 12 s where pip took 62 s, the same packages at
# the same versions (constraints.txt), measured from a clean clone on 2026-12-06. It writes the
# packages' bytecode as pip does (--compile-bytecode): where PYTHONDONTWRITEBYTECODE is set, a venv
# without it made every `chaos run` and Locust the suite starts compile its imports again
# (`locust --version`: 0.9 s of CPU against 0.35 s; a whole clean-clone run 1.19x the test time).
# uv itself is pinned and kept in the cache, in a venv of its own made by pip. System
# certificates (native TLS), as pip uses.
$(UV):
	@echo "installing uv $(UV_VERSION), the venv's installer (cached in $(CACHE))"
	@$(PYTHON) -m venv $(UV_DIR)
	@$(UV_DIR)/bin/pip install -q uv==$(UV_VERSION)

$(VENV_STAMP): pyproject.toml constraints.txt | $(UV)
	@[ -x $(BIN)/python ] || $(UV) venv -q --python $(PYTHON) $(VENV)
	@echo "installing the project into $(VENV) (log: $(VENV)/install.log)"
	@UV_NATIVE_TLS=1 $(UV) pip install --compile-bytecode --python $(BIN)/python -c constraints.txt -e '.[dev]' \
		> $(VENV)/install.log 2>&1 || { tail -20 $(VENV)/install.log; exit 1; }
	@rm -f $(VENV)/.installed-*; touch $@

$(TOXIPROXY):
	@echo "building toxiproxy $(TOXIPROXY_VERSION) with go install (cached in $(CACHE))"
	GOBIN=$(dir $(TOXIPROXY)) go install $(GO_BUILD_FLAGS) github.com/Shopify/toxiproxy/v2/cmd/server@v$(TOXIPROXY_VERSION)

$(DISTRIBUTION3): tools/distribution-registry/main.go tools/distribution-registry/go.mod tools/distribution-registry/go.sum
	@echo "building tools/distribution-registry (CNCF Distribution $(DISTRIBUTION3_VERSION)'s registry, no cloud storage drivers; cached in $(CACHE))"
	cd tools/distribution-registry && go build $(GO_BUILD_FLAGS) -o $@ .

$(CRANE):
	@echo "building go-containerregistry's crane $(CRANE_VERSION) with go install (cached in $(CACHE))"
	GOBIN=$(dir $(CRANE)) go install $(GO_BUILD_FLAGS) github.com/google/go-containerregistry/cmd/crane@v$(CRANE_VERSION)

$(GGCR_REGISTRY): tools/ggcr-registry/main.go tools/ggcr-registry/go.mod tools/ggcr-registry/go.sum
	@echo "building tools/ggcr-registry (go-containerregistry $(CRANE_VERSION)'s registry, referrers API on; cached in $(CACHE))"
	cd tools/ggcr-registry && go build $(GO_BUILD_FLAGS) -o $@ .

$(REGSYNC):
	@echo "building regclient's regsync $(REGSYNC_VERSION) with go install (cached in $(CACHE))"
	GOBIN=$(dir $(REGSYNC)) go install $(GO_BUILD_FLAGS) github.com/regclient/regclient/cmd/regsync@v$(REGSYNC_VERSION)

$(COSIGN):
	@echo "building sigstore's cosign $(COSIGN_VERSION) with go install (~8 min; cached in $(CACHE))"
	GOBIN=$(dir $(COSIGN)) go install $(GO_BUILD_FLAGS) github.com/sigstore/cosign/v3/cmd/cosign@v$(COSIGN_VERSION)

gameday: setup ## run a real game day on the embedded sandbox
	$(BIN)/chaosregistry gameday $(EXPERIMENT)

lint: $(VENV_STAMP) ## ruff lint + format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV_STAMP) ## mypy (strict) on the package
	$(BIN)/mypy

# Every tier in parallel workers (pytest-xdist): the sandbox and cluster tests mostly wait (fault
# durations, recoveries, bring-ups), so more workers than cores shortens the run. Each sandbox
# module stays on one worker (its module-scoped sandboxes start once) and the cluster tier runs
# on two, side by side (two test clusters per machine, one per instance):
# tests/support/scheduling.py. Each worker has its own sandbox, ports, ledger index and state
# (tests/conftest.py, tests/support/ports.py).
# PYTEST_WORKERS: two workers for the cluster tier's two units, three for the other tiers
# meanwhile. Measured from a clean clone (bench/README.md, 2026-12-06, ninth session): with 5 the
# two cores are 95-99% busy for the whole run, so more workers would only slow each test.
# The test bed's binaries build before pytest, beside the Go tools (-j3), and start first: the
# Kubernetes build is the set-up's longest, so it should not wait for a slot. Building them in the
# background while the tests ran was measured slower cold (2026-12-06: etcd alone took 725 s
# niced beside three test workers, against 133 s side by side with the other builds), and the
# cluster tier, whose worker waits for them, is the suite's longest chain. A cluster test whose
# binaries do not build fails with the build log's tail (tests/support/cluster.py).
PYTEST_WORKERS ?= 5
# The package's bytecode is written before the tests: the suite starts thousands of Python
# processes (chaos run, the CLI, watchdogs, Locust), and where PYTHONDONTWRITEBYTECODE is set
# (as on our CI machines) each would compile every module it imports again (`chaosregistry
# validate`: 0.47 s of CPU, 0.34 s with the bytecode). compileall skips what is up to date.
pytest-all: $(VENV_STAMP) .apt-installed ## pytest only, every tier (unit, sandbox, cluster), in parallel
	@$(MAKE) -s --no-print-directory -j3 cluster-binaries go-tools
	@$(BIN)/python -m compileall -q chaosregistry
	$(BIN)/pytest -n $(PYTEST_WORKERS) --durations=20

# No Go tool and no test bed: the unit tier starts no server. It does run Debian's promtool
# (rules files) and `nginx -t` (generated configs), hence the apt packages; both are a check
# when they are installed already.
test-unit: $(VENV_STAMP) .apt-installed ## the unit tier only (tests/unit): no server, under a minute
	$(BIN)/pytest tests/unit

# Strict: a warning, a broken link or anchor, a page left out of the nav fails the build
# (mkdocs.yml); no --quiet, which hides the warnings strict mode counts and passes. The activity
# reference is generated from the activities (tools/docs_hooks.py).
docs: $(VENV_STAMP) ## build the documentation site strictly into site/ (a few seconds)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

test: lint typecheck docs pytest-all ## every check and every test

bench: setup ## run the side-by-side benchmarks under bench/ (figures: bench/README.md)
	$(BIN)/python bench/pull.py
	$(BIN)/python bench/faults.py
	$(BIN)/python bench/load.py
	$(BIN)/python bench/report.py
	$(BIN)/python bench/prometheus.py
	$(BIN)/python bench/hygiene.py
	$(BIN)/python bench/venv_install.py --uv $(UV)
	$(BIN)/python bench/suite_cpu.py

clean: ## remove the venv and caches (not the toolchain cache)
	rm -rf $(VENV) .apt-installed .mypy_cache .ruff_cache .pytest_cache site
