//go:build tools

// Package tools lists the programs this module builds, so that `go mod tidy`
// keeps their dependencies in go.mod and go.sum. The build tag keeps the file
// out of every real build; build.sh builds each package by its import path.
package tools

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
