package broker

import "testing"

func TestCovers(t *testing.T) {
	f := func(p, filter string, want bool) {
		t.Helper()
		if got := covers(p, filter); got != want {
			t.Fatalf("unexpected covers(%q, %q); got %v; want %v", p, filter, got, want)
		}
	}
	f("#", "a/b/c", true)
	f("#", "#", true)
	f("a/#", "a", true) // "a/#" also matches the parent level
	f("a/#", "a/+/c", true)
	f("a/+", "a/b", true)
	f("a/+", "a/+", true)
	f("a/+", "a/#", false)
	f("a/b", "a/+", false)
	f("a/+/c", "a/b/c/d", false)
	f("a/b/c", "a/b", false)
	f("polis/v1/+/+/telemetry", "polis/v1/PO-1/atm-1/telemetry", true)
}

func TestPrincipal_ACL(t *testing.T) {
	dev := &principal{role: roleDevice, site: "PO-001001-1", asset: "atm-1"}
	gw := &principal{role: roleGateway, site: "PO-001001-1", asset: "gw-1"}
	svc := &principal{role: roleService, name: "bridge", publish: []string{"bridge/#"}, subscribe: []string{"polis/v1/+/+/telemetry"}}
	wide := &principal{role: roleService, name: "wide", publish: []string{"#"}, subscribe: []string{"#", "+/x"}}
	sys := &principal{role: roleService, name: "sys", subscribe: []string{"$SYS/#"}}
	type tc struct {
		p      *principal
		pub    bool
		target string
		want   bool
	}
	for _, c := range []tc{
		{dev, true, "polis/v1/PO-001001-1/atm-1/telemetry", true},
		{dev, true, "polis/v1/PO-001001-1/atm-1/event", true},
		{dev, true, "polis/v1/PO-001001-1/atm-1/state/reported", true},
		{dev, true, "polis/v1/PO-001001-1/atm-1/status", true},
		{dev, true, "polis/v1/PO-001001-1/atm-1/state/desired", false},
		{dev, true, "polis/v1/PO-001001-1/atm-2/telemetry", false},
		{dev, true, "polis/v1/PO-001002-1/atm-1/telemetry", false},
		{dev, true, "other/topic", false},
		{dev, false, "polis/v1/PO-001001-1/atm-1/state/desired", true},
		{dev, false, "polis/v1/PO-001001-1/+/state/desired", false},
		{dev, false, "polis/v1/PO-001001-1/atm-2/state/desired", false},
		{dev, false, "polis/v1/PO-001001-1/atm-1/telemetry", false},
		{dev, false, "#", false},
		{gw, true, "polis/v1/PO-001001-1/atm-2/telemetry", true},
		{gw, true, "polis/v1/PO-001002-1/atm-2/telemetry", false},
		{gw, false, "polis/v1/PO-001001-1/+/state/desired", true},
		{gw, false, "polis/v1/PO-001001-1/evc-1/state/desired", true},
		{gw, false, "polis/v1/+/+/state/desired", false},
		{gw, false, "polis/v1/PO-001001-1/#", false},
		{svc, true, "bridge/x/y", true},
		{svc, true, "polis/v1/PO-001001-1/atm-1/telemetry", false},
		{svc, false, "polis/v1/PO-001001-1/+/telemetry", true},
		{svc, false, "polis/v1/#", false},
		// Shared subscriptions are checked as their filter.
		{svc, false, "$share/g/polis/v1/PO-001001-1/+/telemetry", true},
		{svc, false, "$SHARE/g/polis/v1/+/+/telemetry", true},
		{svc, false, "$share/g/polis/v1/#", false},
		{dev, false, "$share/g/polis/v1/PO-001001-1/atm-1/state/desired", true},
		{dev, false, "$share/g/polis/v1/PO-001001-1/atm-2/state/desired", false},
		// '$' topics: not reached by '#' or '+', only by a pattern naming them.
		{wide, false, "#", true},
		{wide, false, "a/b", true},
		{wide, false, "$SYS/#", false},
		{wide, false, "$SYS/broker/uptime", false},
		{wide, false, "$share/g/#", true},
		{wide, true, "$SYS/x", false},
		{wide, true, "$app/x", false},
		{sys, false, "$SYS/#", true},
		{sys, false, "$SYS/broker/uptime", true},
		{sys, false, "a/b", false},
	} {
		var got bool
		if c.pub {
			got = c.p.canPublish(c.target)
		} else {
			got = c.p.canSubscribe(c.target)
		}
		if got != c.want {
			t.Errorf("%s pub=%v %q: got %v; want %v", c.p, c.pub, c.target, got, c.want)
		}
	}
}
