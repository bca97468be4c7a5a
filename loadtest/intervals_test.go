package loadtest

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/polis-platform/polis/twin/lifecycle"
	"github.com/polis-platform/polis/twin/registry"
)

func TestInterval(t *testing.T) {
	for _, tc := range []struct {
		typ  string
		want time.Duration
	}{
		{registry.GatewayType, time.Minute},
		{registry.TypeTotem, time.Minute},
		{registry.TypeATM, time.Minute},
		{registry.TypeLocker, 2 * time.Minute},
		{registry.TypeShowcase, 5 * time.Minute},
		{registry.TypeEnv, time.Minute},
		{registry.TypeMeter, time.Minute},
		{registry.TypeEVC, 30 * time.Second},
		{registry.TypePV, time.Minute},
		{registry.TypeOutdoor, time.Minute},
		{registry.TypeDesk, 5 * time.Minute},
		{registry.TypeRoom, 2 * time.Minute},
		{"", DefaultInterval},
		{"teleporter", DefaultInterval},
	} {
		if got := Interval(tc.typ); got != tc.want {
			t.Errorf("Interval(%q) = %s; want %s", tc.typ, got, tc.want)
		}
	}
}

// Every type the fleet generator makes has an interval of its own in the
// table, so a new type is a decision rather than a default.
func TestInterval_CoversTheFleet(t *testing.T) {
	reg, _ := fleet(t, 60, 5)
	for _, s := range reg.Sites() {
		for _, a := range s.Assets {
			if _, ok := intervals[a.Type]; !ok {
				t.Errorf("asset type %q (%s/%s) has no reporting interval", a.Type, s.ID, a.ID)
			}
		}
	}
}

func TestRealisticRate(t *testing.T) {
	cred := func(site, asset string) registry.Credential {
		return registry.Credential{Site: site, Asset: asset, Username: registry.Username(site, asset), Password: "x"}
	}
	// S1 has a gateway; S2 does not. Without a registry the types come
	// from the ids.
	creds := []registry.Credential{
		cred("S1", "gw-1"), cred("S1", "totem-1"), cred("S1", "evc-1"), cred("S1", "evc-2"), cred("S1", "showcase-1"),
		cred("S2", "locker-1"), cred("S2", "desk-1"),
	}
	const (
		s1 = 1.0/60 + 1.0/60 + 2.0/30 + 1.0/300
		s2 = 1.0/120 + 1.0/300
	)
	noEVC := func(_, asset string) lifecycle.State {
		if strings.HasPrefix(asset, "evc-") {
			return lifecycle.Planned
		}
		return lifecycle.Operational
	}
	for _, tc := range []struct {
		name string
		opts Options
		want float64
	}{
		{"every device", Options{}, s1 + s2},
		{"through gateways", Options{UseGateways: true}, s1 + s2},
		{"first gateway only", Options{UseGateways: true, Connections: 1}, s1},
		{"first two own logins", Options{Connections: 2}, 1.0/30 + 1.0/30}, // S1/evc-1, S1/evc-2
		{"scaled", Options{IntervalScale: 0.5}, 2 * (s1 + s2)},
		{"off-site assets are silent", Options{Lifecycle: noEVC}, s1 + s2 - 2.0/30},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.Credentials = creds
			if got := RealisticRate(tc.opts); math.Abs(got-tc.want) > 1e-9 {
				t.Errorf("RealisticRate = %g msg/s; want %g", got, tc.want)
			}
		})
	}
}

// The schedule gives each device one slot per interval at its own phase,
// whatever the order it is asked in.
func TestSchedule(t *testing.T) {
	_, creds := fleet(t, 20, 2)
	var devs []*device
	for _, c := range plan(Options{Credentials: creds, Seed: 7}) {
		devs = append(devs, c.devices...)
	}
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const scale = 0.001 // a minute is 60 ms
	q := newSchedule(devs, start, scale)
	phases := map[*device]time.Duration{}
	for _, sl := range *q {
		p := sl.next.Sub(start)
		if p < 0 || p >= sl.interval {
			t.Fatalf("%s/%s: phase %s outside its interval %s", sl.d.site, sl.d.asset, p, sl.interval)
		}
		phases[sl.d] = p
	}
	// Run 10 s of schedule time, waking when the first device is due.
	end := start.Add(10 * time.Second)
	got := map[*device]int{}
	for {
		now, ok := q.next()
		if !ok || now.After(end) {
			break
		}
		for {
			sl, ok := q.due(now)
			if !ok {
				break
			}
			got[sl.d]++
			q.advance(sl, now)
		}
	}
	for _, d := range devs {
		iv := scaledInterval(d.typ, scale)
		want := int((end.Sub(start)-phases[d])/iv) + 1
		if got[d] != want {
			t.Errorf("%s/%s (%s every %s, phase %s): %d reports in 10 s; want %d", d.site, d.asset, d.typ, iv, phases[d], got[d], want)
		}
	}
	// The phases spread over the interval: every tenth of a minute has
	// devices reporting once a minute.
	tenths := map[int]int{}
	for d, p := range phases {
		if iv := scaledInterval(d.typ, scale); iv == 60*time.Millisecond {
			tenths[int(p*10/iv)]++
		}
	}
	if len(tenths) != 10 {
		t.Errorf("phases of the once-a-minute devices by tenth of a minute: %v; want all ten", tenths)
	}
	// Same seed, same phases; another seed, others.
	again := newSchedule(devs, start, scale)
	for _, sl := range *again {
		if sl.next.Sub(start) != phases[sl.d] {
			t.Fatalf("%s/%s: phase %s, then %s with the same seed", sl.d.site, sl.d.asset, phases[sl.d], sl.next.Sub(start))
		}
	}
	byName := map[string]time.Duration{}
	for d, p := range phases {
		byName[d.site+"/"+d.asset] = p
	}
	var other []*device
	for _, c := range plan(Options{Credentials: creds, Seed: 8}) {
		other = append(other, c.devices...)
	}
	same := 0
	for _, sl := range *newSchedule(other, start, scale) {
		if sl.next.Sub(start) == byName[sl.d.site+"/"+sl.d.asset] {
			same++
		}
	}
	if same > len(other)/10 {
		t.Errorf("seeds 7 and 8 give %d of %d devices the same phase", same, len(other))
	}
}

// A device that fell behind reports once and keeps its phase, rather than
// catching up in a burst.
func TestSchedule_FallingBehind(t *testing.T) {
	d := &device{typ: registry.TypeEVC, seed: 42}
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	q := newSchedule([]*device{d}, start, 1)
	sl, _ := q.due((*q)[0].next)
	phase := sl.next.Sub(start)
	late := sl.next.Add(95 * time.Second) // three intervals and a sixth
	q.advance(sl, late)
	next, _ := q.next()
	if want := start.Add(phase + 4*30*time.Second); !next.Equal(want) {
		t.Fatalf("after falling 95 s behind, next report at +%s; want +%s", next.Sub(start), want.Sub(start))
	}
	if _, ok := q.due(late); ok {
		t.Fatal("due again at once after falling behind")
	}
}

func TestDialError(t *testing.T) {
	c := &conn{cred: registry.Credential{Username: "S1/gw-1"}, source: netip.MustParseAddr("127.0.0.2")}
	// paho wraps the dialer's error as "network Error : dial tcp ...".
	wrap := func(errno syscall.Errno) error {
		return fmt.Errorf("%w : %w", packets.ErrorNetworkError,
			&net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("socket", errno)})
	}
	for _, tc := range []struct {
		err  error
		want string
	}{
		{wrap(syscall.EMFILE), "too many open files, one per connection: raise ulimit -n or split the fleet over several processes"},
		{wrap(syscall.ENFILE), "raise ulimit -n"},
		{wrap(syscall.EADDRNOTAVAIL), "add source addresses"},
		{wrap(syscall.ECONNREFUSED), "cannot connect S1/gw-1 to tcp://127.0.0.1:1883 from 127.0.0.2: "},
	} {
		err := dialError(c, "tcp://127.0.0.1:1883", tc.err)
		if !strings.Contains(err.Error(), tc.want) || !errors.Is(err, tc.err) {
			t.Errorf("%v: got %q; want it to say %q and wrap the cause", tc.err, err, tc.want)
		}
	}
	if err := dialError(c, "b", wrap(syscall.ECONNREFUSED)); strings.Contains(err.Error(), "ulimit") {
		t.Errorf("a refused connection blames the file limit: %v", err)
	}
}
