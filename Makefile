# The two commands a newcomer needs: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
CONTROLPLANE_DIR ?= /tmp/connectors-controlplane
CLUSTER_DIR ?= /tmp/connectors-cluster
export PATH := $(HOME)/.local/bin:$(PATH)

.PHONY: help install deps controlplane-build controlplane controlplane-down node-build seaweedfs-build cluster cluster-down image demo demo-down test lint crds bench

# Every target says what it does on its own line, after `##`; `make help` lists them.
help: ## this list
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([a-z-]+):.*## /\1\t/' | \
		awk -F '\t' '{ printf "make %-20s %s\n", $$1, $$2 }'

# Debian packages the tests use as real peers, and the Python package with its test extras.
deps: ## the Debian packages the tests use as real peers (hack/install-deps.sh)
	./hack/install-deps.sh

install: ## the Python package, editable, with its test tools
	$(PYTHON) -m pip install --quiet -e '.[test]'

controlplane-build: ## build etcd, kube-apiserver, kube-controller-manager, kubectl (cached)
	./hack/controlplane/build.sh

controlplane: install controlplane-build ## start etcd + kube-apiserver + kube-controller-manager; prints KUBECONFIG=...
	$(PYTHON) -m connectors.devcluster up --dir $(CONTROLPLANE_DIR)

controlplane-down: ## stop them and remove their data
	$(PYTHON) -m connectors.devcluster down --dir $(CONTROLPLANE_DIR)

node-build: ## build kubelet, kube-scheduler, kube-proxy, CoreDNS, the provisioner, pause (cached)
	./hack/node/build.sh

seaweedfs-build: ## build weed (SeaweedFS), the S3-compatible server of the sink tests (cached)
	./hack/seaweedfs/build.sh

# A real node next to the control plane: needs root; installs containerd, runc,
# CNI plugins, iptables and conntrack with apt-get when missing.
cluster: install controlplane-build node-build ## the control plane plus a real node (containerd, kubelet, DNS, volumes); prints KUBECONFIG=...
	$(PYTHON) -m connectors.devcluster up --node --dir $(CLUSTER_DIR)

cluster-down: ## stop the node and the control plane; leaves the machine as it was
	$(PYTHON) -m connectors.devcluster down --dir $(CLUSTER_DIR)

# The Dockerfile at the root, built with a local base and host-built wheels;
# skipped when nothing it depends on changed.
image: ## build localhost/connectors:dev here (no registry); prints its OCI archive
	./hack/image/build.sh

crds: install ## regenerate crds/ from the models
	connectors crds

lint: install ## ruff, mypy and the import contracts of .importlinter
	ruff check operator tests bench
	mypy
	lint-imports

test: deps install controlplane-build node-build seaweedfs-build image lint ## every test: lint, types, unit, control plane, protocols, chaos, the real node
	./hack/run-tests.sh

# Benchmarks are not tests: `make test` never runs them. They need root (sshd,
# vsftpd, a loop mount) and an idle machine; BENCH_ARGS go to bench/run.py,
# e.g. BENCH_ARGS="--quick" or BENCH_ARGS="--only listeners,transfer".
BENCH_ARGS ?=
bench: deps install controlplane-build ## every benchmark: one table, bench/results.json
	$(PYTHON) bench/run.py $(BENCH_ARGS)

demo: deps install controlplane-build node-build ## a real local cluster, the image, the chart, the examples, a partner upload
	./hack/demo.sh

demo-down: ## stop the demo and leave the machine as it was
	./hack/demo.sh down
