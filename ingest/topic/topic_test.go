package topic

import (
	"errors"
	"testing"
)

func TestParse_Success(t *testing.T) {
	f := func(in string, want Topic) {
		t.Helper()
		got, err := Parse(in)
		if err != nil {
			t.Fatalf("unexpected error for %q: %v", in, err)
		}
		if got != want {
			t.Fatalf("unexpected topic for %q; got %+v; want %+v", in, got, want)
		}
		if got.String() != in {
			t.Fatalf("round trip of %q gave %q", in, got.String())
		}
	}
	f("polis/v1/PO-001001-1/atm-1/telemetry", Topic{"PO-001001-1", "atm-1", Telemetry})
	f("polis/v1/PO-001001-1/atm-1/event", Topic{"PO-001001-1", "atm-1", Event})
	f("polis/v1/CW-TO-3/desk-14/state/reported", Topic{"CW-TO-3", "desk-14", Reported})
	f("polis/v1/CW-TO-3/desk-14/state/desired", Topic{"CW-TO-3", "desk-14", Desired})
	f("polis/v1/CW-TO-3/gw-1/status", Topic{"CW-TO-3", "gw-1", Status})
}

func TestParse_Failure(t *testing.T) {
	f := func(in string, notPlatform bool) {
		t.Helper()
		_, err := Parse(in)
		if err == nil {
			t.Fatalf("expected error for %q", in)
		}
		if errors.Is(err, ErrNotPlatform) != notPlatform {
			t.Fatalf("unexpected error class for %q: %v", in, err)
		}
	}
	f("sensors/room1", true)
	f("polis/v2/a/b/telemetry", true)
	f("polis/v1/", false)
	f("polis/v1/site", false)
	f("polis/v1/site/asset", false)
	f("polis/v1/site//telemetry", false)
	f("polis/v1/site/asset/telemetry/extra", false)
	f("polis/v1/site/asset/state", false)
}

func FuzzParse(f *testing.F) {
	f.Add("polis/v1/PO-001001-1/atm-1/telemetry")
	f.Add("polis/v1/a/b/state/reported")
	f.Fuzz(func(t *testing.T, s string) {
		tp, err := Parse(s)
		if err != nil {
			return
		}
		if tp.String() != s {
			t.Fatalf("accepted %q but rebuilt %q", s, tp.String())
		}
	})
}
