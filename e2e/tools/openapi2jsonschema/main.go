// Command openapi2jsonschema turns the OpenAPI v2 document a Kubernetes
// apiserver serves at /openapi/v2 into the standalone JSON schemas kubeconform
// reads, one file per kind and version:
//
//	<out>/standalone/<kind>-<group>-<version>.json
//	<out>/standalone-strict/<kind>-<group>-<version>.json
//
// <group> is the first label of the API group and is left out for the core
// group ("deployment-apps-v1.json", "service-v1.json"), which is the naming
// kubeconform's {{ .ResourceKind }}{{ .KindSuffix }} template expects.
//
// The conversion follows the schemas kubeconform publishes:
//   - every $ref is inlined ("standalone"); a reference back into a definition
//     that is already being expanded (the recursive JSONSchemaProps of a
//     CustomResourceDefinition) becomes {}, which accepts anything;
//   - Quantity and int-or-string values accept a string or a number;
//   - optional fields also accept null, as generated manifests carry
//     "creationTimestamp: null";
//   - the strict variant sets additionalProperties: false on every object that
//     lists its properties and does not preserve unknown fields, so an unknown
//     or misspelt field is an error.
//
// Only the standard library is used, so `go run` needs no downloads.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

const refPrefix = "#/definitions/"

type schema = map[string]any

type converter struct {
	defs   map[string]schema
	strict bool
}

func main() {
	in := flag.String("in", "", "OpenAPI v2 document (JSON), e.g. from `kubectl get --raw /openapi/v2`")
	out := flag.String("out", "", "output directory")
	flag.Parse()
	if *in == "" || *out == "" {
		fmt.Fprintln(os.Stderr, "usage: openapi2jsonschema -in openapi-v2.json -out DIR")
		os.Exit(2)
	}
	if err := run(*in, *out); err != nil {
		fmt.Fprintln(os.Stderr, "openapi2jsonschema:", err)
		os.Exit(1)
	}
}

func run(in, out string) error {
	raw, err := os.ReadFile(in)
	if err != nil {
		return fmt.Errorf("failed to read the OpenAPI document: %w", err)
	}
	var doc struct {
		Definitions map[string]schema `json:"definitions"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return fmt.Errorf("failed to parse %s as JSON: %w", in, err)
	}
	if len(doc.Definitions) == 0 {
		return fmt.Errorf("%s has no definitions; is it an OpenAPI v2 document?", in)
	}

	names := make([]string, 0, len(doc.Definitions))
	for name := range doc.Definitions {
		names = append(names, name)
	}
	sort.Strings(names)

	written := map[string]string{}
	for _, strict := range []bool{false, true} {
		dir := filepath.Join(out, "standalone")
		if strict {
			dir += "-strict"
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("failed to create %s: %w", dir, err)
		}
		c := converter{defs: doc.Definitions, strict: strict}
		for _, name := range names {
			for _, file := range fileNames(doc.Definitions[name]) {
				// Several definitions can carry the same kind (meta/v1
				// DeleteOptions in every group); keep the first in name order.
				if prev, ok := written[dir+file]; ok && prev != name {
					continue
				}
				written[dir+file] = name
				s := c.expand(schema{"$ref": refPrefix + name}, nil)
				body, err := json.MarshalIndent(s, "", "  ")
				if err != nil {
					return fmt.Errorf("failed to encode the schema of %s: %w", name, err)
				}
				if err := os.WriteFile(filepath.Join(dir, file), append(body, '\n'), 0o644); err != nil {
					return fmt.Errorf("failed to write %s: %w", file, err)
				}
			}
		}
	}
	fmt.Fprintf(os.Stderr, "openapi2jsonschema: wrote %d schemas to %s\n", len(written), out)
	return nil
}

// fileNames gives the kubeconform file name of each group/version/kind a
// definition is served as.
func fileNames(def schema) []string {
	gvks, _ := def["x-kubernetes-group-version-kind"].([]any)
	var files []string
	for _, item := range gvks {
		gvk, _ := item.(map[string]any)
		group, _ := gvk["group"].(string)
		version, _ := gvk["version"].(string)
		kind, _ := gvk["kind"].(string)
		if version == "" || kind == "" {
			continue
		}
		suffix := "-" + strings.ToLower(version)
		if group != "" {
			suffix = "-" + strings.ToLower(strings.SplitN(group, ".", 2)[0]) + suffix
		}
		files = append(files, strings.ToLower(kind)+suffix+".json")
	}
	return files
}

// expand returns a copy of s with every reference inlined. stack holds the
// definitions being expanded on the way here, to cut recursion.
func (c *converter) expand(s schema, stack []string) schema {
	if ref, ok := s["$ref"].(string); ok {
		name := strings.TrimPrefix(ref, refPrefix)
		for _, seen := range stack {
			if seen == name {
				return schema{}
			}
		}
		def, ok := c.defs[name]
		if !ok {
			return schema{}
		}
		out := c.expand(def, append(stack, name))
		if name == "io.k8s.apimachinery.pkg.api.resource.Quantity" {
			out["type"] = []any{"string", "number"}
			delete(out, "format")
		}
		// Keep a description written next to the reference.
		if d, ok := s["description"]; ok {
			out["description"] = d
		}
		return out
	}

	out := make(schema, len(s))
	for k, v := range s {
		switch k {
		case "properties", "patternProperties":
			props, _ := v.(map[string]any)
			m := make(map[string]any, len(props))
			for name, p := range props {
				if ps, ok := p.(map[string]any); ok {
					m[name] = c.expand(ps, stack)
				}
			}
			out[k] = m
		case "items", "additionalProperties", "not":
			switch t := v.(type) {
			case map[string]any:
				out[k] = c.expand(t, stack)
			case []any:
				out[k] = c.expandList(t, stack)
			default:
				out[k] = v
			}
		case "allOf", "anyOf", "oneOf":
			list, _ := v.([]any)
			out[k] = c.expandList(list, stack)
		default:
			out[k] = v
		}
	}

	if out["format"] == "int-or-string" || out["x-kubernetes-int-or-string"] == true {
		out["type"] = []any{"string", "integer"}
		delete(out, "format")
	}

	if props, ok := out["properties"].(map[string]any); ok {
		required := map[string]bool{}
		if req, ok := out["required"].([]any); ok {
			for _, r := range req {
				if name, ok := r.(string); ok {
					required[name] = true
				}
			}
		}
		for name, p := range props {
			if ps, ok := p.(schema); ok && !required[name] {
				allowNull(ps)
			}
		}
		_, hasAdditional := out["additionalProperties"]
		if c.strict && !hasAdditional && out["x-kubernetes-preserve-unknown-fields"] != true {
			out["additionalProperties"] = false
		}
	}
	return out
}

func (c *converter) expandList(list []any, stack []string) []any {
	out := make([]any, 0, len(list))
	for _, item := range list {
		if s, ok := item.(map[string]any); ok {
			out = append(out, c.expand(s, stack))
		} else {
			out = append(out, item)
		}
	}
	return out
}

// allowNull lets a schema that names its type also accept null.
func allowNull(s schema) {
	if enum, ok := s["enum"].([]any); ok && !containsNull(enum) {
		s["enum"] = append(enum, nil)
	}
	switch t := s["type"].(type) {
	case string:
		if t != "null" {
			s["type"] = []any{t, "null"}
		}
	case []any:
		for _, v := range t {
			if v == "null" {
				return
			}
		}
		s["type"] = append(t, "null")
	}
}

func containsNull(list []any) bool {
	for _, v := range list {
		if v == nil {
			return true
		}
	}
	return false
}
