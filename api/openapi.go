package api

import (
	_ "embed"
	"encoding/json"
	"fmt"

	"gopkg.in/yaml.v3"
)

// openAPIYAML is the API's contract, written by hand. The tests validate
// every response they get against it, so a handler and the document cannot
// drift apart unnoticed.
//
//go:embed openapi.yaml
var openAPIYAML []byte

// openAPIJSON converts the embedded document to the JSON served at
// /api/v1/openapi.json.
func openAPIJSON() ([]byte, error) {
	var v any
	if err := yaml.Unmarshal(openAPIYAML, &v); err != nil {
		return nil, fmt.Errorf("cannot parse openapi.yaml: %w", err)
	}
	b, err := json.Marshal(jsonable(v))
	if err != nil {
		return nil, fmt.Errorf("cannot convert openapi.yaml to JSON: %w", err)
	}
	return b, nil
}

// jsonable turns YAML maps with non-string keys (response codes written
// as 200) into maps JSON can encode.
func jsonable(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			t[k] = jsonable(x)
		}
		return t
	case map[any]any:
		m := make(map[string]any, len(t))
		for k, x := range t {
			m[fmt.Sprint(k)] = jsonable(x)
		}
		return m
	case []any:
		for i, x := range t {
			t[i] = jsonable(x)
		}
		return t
	}
	return v
}
