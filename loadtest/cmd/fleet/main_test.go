package main

import (
	"math"
	"strings"
	"testing"

	"github.com/polis-platform/polis/loadtest/e2e"
)

func TestScenarios(t *testing.T) {
	for _, tc := range []struct {
		modes, loads string
		want         []string // scenario names
		err          string
	}{
		{"gateway,direct", "realistic,max", []string{"gateway-realistic", "gateway-max", "direct-realistic", "direct-max"}, ""},
		{"direct", "2500", []string{"direct-2500"}, ""},
		{" gateway ", " max ", []string{"gateway-max"}, ""},
		{"gateways", "max", nil, `"gateways" is neither gateway nor direct`},
		{"gateway", "fast", nil, `"fast" is not realistic, max or a positive rate`},
		{"gateway", "-5", nil, `"-5" is not realistic`},
		{"gateway", "", nil, `"" is not realistic`},
		{"gateway", "NaN", nil, `"NaN" is not realistic`},
		{"gateway", "+Inf", nil, `"+Inf" is not realistic`},
	} {
		got, err := scenarios(tc.modes, tc.loads)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("scenarios(%q, %q): %v, want an error with %q", tc.modes, tc.loads, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("scenarios(%q, %q): %v", tc.modes, tc.loads, err)
			continue
		}
		if names := names(got); strings.Join(names, " ") != strings.Join(tc.want, " ") {
			t.Errorf("scenarios(%q, %q) = %v, want %v", tc.modes, tc.loads, names, tc.want)
		}
	}
}

func names(ss []e2e.Scenario) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s.Name()
	}
	return out
}

// FuzzScenarios: any flag values give scenarios or an error, never a panic,
// and every scenario is one the report can name.
func FuzzScenarios(f *testing.F) {
	f.Add("gateway,direct", "realistic,max")
	f.Add("direct", "1e3")
	f.Add(",", ",,")
	f.Fuzz(func(t *testing.T, modes, loads string) {
		ss, err := scenarios(modes, loads)
		if err != nil {
			return
		}
		for _, s := range ss {
			if !(s.Rate >= 0) || math.IsInf(s.Rate, 0) || (s.Intervals && s.Rate != 0) || s.Name() == "" {
				t.Fatalf("bad scenario %+v from %q, %q", s, modes, loads)
			}
		}
	})
}
