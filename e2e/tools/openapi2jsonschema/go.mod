module paddock.dev/e2e/tools/openapi2jsonschema

go 1.24.0
