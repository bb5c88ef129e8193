# The two commands a newcomer needs: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
CONTROLPLANE_DIR ?= /tmp/connectors-controlplane
CLUSTER_DIR ?= /tmp/connectors-cluster
export PATH := $(HOME)/.local/bin:$(PATH)

.PHONY: help install deps controlplane-build controlplane controlplane-down node-build cluster cluster-down image demo demo-down test lint crds

help:
	@echo "make demo                 a real local cluster, the image, the chart, the examples, a partner upload"
	@echo "make test                 every test: lint, types, unit, control plane, protocols, chaos, the real node"
	@echo "make controlplane         start etcd + kube-apiserver + kube-controller-manager; prints KUBECONFIG=..."
	@echo "make controlplane-down    stop them and remove their data"
	@echo "make cluster              the control plane plus a real node (containerd, kubelet, DNS, volumes); prints KUBECONFIG=..."
	@echo "make cluster-down         stop the node and the control plane; leaves the machine as it was"
	@echo "make lint                 ruff, mypy and the import contracts of .importlinter"
	@echo "make crds                 regenerate crds/ from the models"
	@echo "make image                build localhost/connectors:dev here (no registry); prints its OCI archive"

# Debian packages the tests use as real peers, and the Python package with its test extras.
deps:
	./hack/install-deps.sh

install:
	$(PYTHON) -m pip install --quiet -e '.[test]'

controlplane-build:
	./hack/controlplane/build.sh

controlplane: install controlplane-build
	$(PYTHON) -m connectors.devcluster up --dir $(CONTROLPLANE_DIR)

controlplane-down:
	$(PYTHON) -m connectors.devcluster down --dir $(CONTROLPLANE_DIR)

node-build:
	./hack/node/build.sh

# A real node next to the control plane: needs root; installs containerd, runc,
# CNI plugins, iptables and conntrack with apt-get when missing.
cluster: install controlplane-build node-build
	$(PYTHON) -m connectors.devcluster up --node --dir $(CLUSTER_DIR)

cluster-down:
	$(PYTHON) -m connectors.devcluster down --dir $(CLUSTER_DIR)

# The Dockerfile at the root, built with a local base and host-built wheels;
# skipped when nothing it depends on changed.
image:
	./hack/image/build.sh

crds: install
	connectors crds

lint: install
	ruff check operator tests bench
	mypy
	lint-imports

test: deps install controlplane-build node-build image lint
	./hack/run-tests.sh

demo: deps install controlplane-build node-build
	./hack/demo.sh

demo-down:
	./hack/demo.sh down
