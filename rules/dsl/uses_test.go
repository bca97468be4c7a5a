package dsl

import (
	"reflect"
	"testing"
)

func TestUses(t *testing.T) {
	for _, tc := range []struct {
		src  string
		want Uses
	}{
		{`last("cassette1_pct") < 10 || avg("cassette2_pct", "5m") < 10`, Uses{Metrics: []string{"cassette1_pct", "cassette2_pct"}}},
		{`asset.metrics.temp_c > 30`, Uses{Metrics: []string{"temp_c"}}},
		{`asset.metrics["co2_ppm"] > 30`, Uses{Metrics: []string{"co2_ppm"}}},
		{`metric == "temp_c" && value > 30`, Uses{Metrics: []string{"temp_c"}}},
		{`metric in ["temp_c", "co2_ppm"] && value > 30`, Uses{Metrics: []string{"co2_ppm", "temp_c"}}},
		{`value > 30`, Uses{AnyMetric: true}},
		{`avg(metric, "5m") > 3`, Uses{AnyMetric: true}},
		{`silent_for() > 60`, Uses{Timer: true}},
		{`hour() >= 10 && last("power_kw") < 1`, Uses{Metrics: []string{"power_kw"}, Timer: true}},
		{`open_now() && avg("co2_ppm", "15m") > 1200`, Uses{Metrics: []string{"co2_ppm"}, Timer: true}},
		{`weekday() <= 5 || holiday()`, Uses{Timer: true}},
		{`asset.props.firmware != "1.2"`, Uses{Timer: true}},
		{`open_now() && asset.status == "offline"`, Uses{Timer: true}},
		{`avg("power_kw", "30m") < 0.3 * province_avg("power_kw")`, Uses{Metrics: []string{"power_kw"}, ProvinceMetrics: []string{"power_kw"}}},
		{`site.temp_c > 28`, Uses{}},
	} {
		t.Run(tc.src, func(t *testing.T) {
			got := mustCompile(t, tc.src).Uses
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Uses = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestRuleSourceAndUses(t *testing.T) {
	src := `groups:
  - name: g
    rules:
      - id: a
        expr: last("temp_c") > 30
        clear: silent_for() > 5 || last("humidity_pct") < 2
        no_data_after: 2h
        severity: info

      # the next rule
      - id: b
        expr: value > 1
        severity: info
`
	f, err := Load("x.yaml", []byte(src), Options{})
	if err != nil {
		t.Fatal(err)
	}
	rs := f.Rules()
	if want := "id: a\nexpr: last(\"temp_c\") > 30\nclear: silent_for() > 5 || last(\"humidity_pct\") < 2\nno_data_after: 2h\nseverity: info\n"; rs[0].Source != want {
		t.Errorf("source of a = %q, want %q", rs[0].Source, want)
	}
	if want := (Uses{Metrics: []string{"humidity_pct", "temp_c"}, Timer: true}); !reflect.DeepEqual(rs[0].Uses, want) {
		t.Errorf("uses of a = %+v, want %+v", rs[0].Uses, want)
	}
	if rs[0].NoDataAfter.Hours() != 2 {
		t.Errorf("no_data_after = %v", rs[0].NoDataAfter)
	}
	if rs[1].Source != "id: b\nexpr: value > 1\nseverity: info\n" {
		t.Errorf("source of b = %q", rs[1].Source)
	}
}

func TestSuggest(t *testing.T) {
	names := []string{"tests", "temp_c", "silent_for", "avg", "sites"}
	for _, tc := range []struct{ in, want string }{
		{"tset", "tests"},    // a swap and a missing letter
		{"tmep_c", "temp_c"}, // a swap
		{"silent_fro", "silent_for"},
		{"agv", "avg"},
		{"xyz", ""},
		{"temperature", ""},
	} {
		if got := Suggest(tc.in, names); got != tc.want {
			t.Errorf("Suggest(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
