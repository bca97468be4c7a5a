package polisds

import (
	"testing"
	"time"
)

func TestUnit(t *testing.T) {
	for m, want := range map[string]string{"temp_c": "celsius", "power_kw": "kwatt", "energy_kwh": "kwatth",
		"humidity_pct": "percent", "co2_ppm": "ppm", "door_open": "", "queue": ""} {
		if got := Unit(m); got != want {
			t.Errorf("Unit(%q) = %q, want %q", m, got, want)
		}
	}
}

func TestExpandMacros(t *testing.T) {
	from := time.Unix(1700000000, 0).UTC()
	to := from.Add(time.Hour).Add(500 * time.Millisecond)
	got, err := ExpandMacros("SELECT $__timeGroup(ts, $__interval) AS t, $__interval_ms AS ms, $__timeGroup(ts, '1h') AS h FROM x WHERE $__timeFilter(ts)", from, to, 90*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	want := "SELECT toDateTime(intDiv(toUInt32(ts), 90) * 90) AS t, 90000 AS ms, toDateTime(intDiv(toUInt32(ts), 3600) * 3600) AS h FROM x WHERE ts >= toDateTime(1700000000) AND ts < toDateTime(1700003601)"
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	if _, err := ExpandMacros("SELECT $__timeGroup(ts, soon)", from, to, time.Second); err == nil {
		t.Error("a bad interval passed")
	}
	if _, err := ExpandMacros("SELECT $__unixEpochFilter(ts)", from, to, time.Second); err == nil {
		t.Error("an unknown macro passed")
	}
}

func TestCheckReadOnly(t *testing.T) {
	for sql, ok := range map[string]bool{
		"SELECT 1":                      true,
		"  -- c\n/* x */ select 1;":     true,
		"WITH 1 AS x SELECT x":          true,
		"SELECT ';' AS semi":            true,
		"INSERT INTO t VALUES (1)":      false,
		"SELECT 1; DROP TABLE t":        false,
		"OPTIMIZE TABLE t":              false,
		"/* SELECT */ TRUNCATE TABLE t": false,
		"SYSTEM SHUTDOWN":               false,
	} {
		if err := CheckReadOnly(sql); (err == nil) != ok {
			t.Errorf("CheckReadOnly(%q) = %v", sql, err)
		}
	}
}
