//go:build tools

// Package tools pins the Kubernetes node commands this module builds. It is a
// module of its own (not ../../controlplane) so that adding the node's commands
// does not change the control plane's go.sum, whose hash keys its cached build.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
