package app_test

import (
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
)

// layers ranks every package of the module along the data path: a package
// may import only packages of a lower rank. New packages must be placed
// here, which is the point: where a package sits is a decision.
var layers = map[string]int{
	// The bottom: plumbing and pure formats every component may use.
	"credential":                         0,
	"kafka":                              0,
	"ingest/topic":                       0,
	"ingest/record":                      0,
	"storage/schema":                     0,
	"twin/lifecycle":                     0,
	"rules/engine":                       0,
	"rules/internal/yamlpos":             0,
	"internal/backoff":                   0,
	"internal/logthrottle":               0,
	"internal/testutil":                  0,
	"internal/chserver":                  0,
	"internal/chserver/chtest":           1,
	"internal/chserver/chdbtest":         4,
	"internal/chserver/chdbtest/chdbrun": 1,
	"ingest/payload":                     1,
	"twin/registry":                      1,
	"twin/state":                         1,
	"rules/dsl":                          1,
	"portal/svg":                         0,
	"italy":                              0,
	// The data path: broker -> ingest -> storage, twin -> rules -> api.
	"ingest":          2,
	"broker":          3,
	"storage":         3,
	"twin":            4,
	"rules/sink":      4,
	"rules":           5,
	"rules/milestone": 5,
	"rules/ruletest":  6,
	"services":        5,
	"portal/progress": 6,
	"api":             7,
	"portal/opendata": 7,
	"portal":          8,
	// The top: the assembly, then what drives it.
	"app":                                  9,
	"plugins/grafana/pkg":                  9,
	"loadtest":                             10,
	"loadtest/e2e":                         11,
	"loadtest/connlat":                     10,
	"loadtest/cmd/connlat":                 12,
	"loadtest/cmd/e2e":                     12,
	"loadtest/cmd/fleet":                   12,
	"cmd/polis":                            12,
	"plugins/grafana/cmd/polis-datasource": 12,
	"deploy":                               12, // tests of the manifests only
	"deploy/clustertest":                   12, // tests only: three polis hosts in network namespaces
}

func TestImportsFlowOneWay(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	cmd := exec.Command("go", "list", "-json=ImportPath,Imports", "../...")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	const module = "github.com/polis-platform/polis/"
	dec := json.NewDecoder(out)
	seen := 0
	for {
		var p struct {
			ImportPath string
			Imports    []string
		}
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		seen++
		name := strings.TrimPrefix(p.ImportPath, module)
		rank, ok := layers[name]
		if !ok {
			t.Errorf("package %s has no place in the layers table of this test: add it", name)
			continue
		}
		for _, imp := range p.Imports {
			if !strings.HasPrefix(imp, module) {
				continue
			}
			dep := strings.TrimPrefix(imp, module)
			if r, ok := layers[dep]; ok && r >= rank {
				t.Errorf("%s (layer %d) imports %s (layer %d): imports must flow down", name, rank, dep, r)
			}
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	if seen < len(layers)/2 {
		t.Fatalf("go list saw %d packages", seen)
	}
}
