//go:build tools

// Package tools names the program this module builds, so that `go mod tidy`
// keeps its dependencies in go.mod and go.sum. The build tag keeps the file out
// of every real build; e2e/tools/build.sh builds the package by its import path.
package tools

import (
	_ "github.com/jaegertracing/jaeger/cmd/jaeger"
)
