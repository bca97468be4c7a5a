package clustertest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/polis-platform/polis/internal/testutil"
	"github.com/polis-platform/polis/twin/registry"
)

// The load: one device per site, each a paho client publishing QoS 1
// messages that carry a unique id (the value of metric), to the host it
// starts on, and to the next host whenever a publish is not acknowledged
// within publishTimeout or the connection fails. An id is never sent twice:
// a message that was not acknowledged is left as it is (it may or may not
// be stored), so an acknowledged id must be stored exactly once.
const (
	metric         = "deploy_seq_count"
	idStride       = 1_000_000     // ids of device w are w*idStride + 1, 2, ...
	probeID        = 999 * 1000000 // the probes' ids, apart from every device's
	publishTimeout = 5 * time.Second
	// pause between a device's acknowledged publishes: some 300 messages/s
	// from the 26 devices, a load the three hosts, Kafka, ClickHouse and the
	// test share two cores for.
	pause = 80 * time.Millisecond
)

func topicOf(c registry.Credential) string {
	return fmt.Sprintf("polis/v1/%s/%s/telemetry", c.Site, c.Asset)
}

func payload(id int64) string { return fmt.Sprintf(`{"m":{"%s":%d}}`, metric, id) }

// loadDevices picks one device (not a gateway) of each site.
func (c *cluster) loadDevices() []registry.Credential {
	var out []registry.Credential
	seen := map[string]bool{}
	for _, cr := range c.creds {
		if seen[cr.Site] || strings.HasPrefix(cr.Asset, registry.GatewayType) {
			continue
		}
		seen[cr.Site] = true
		out = append(out, cr)
	}
	if len(out) != len(c.sites) {
		c.t.Fatalf("%d load devices for %d sites", len(out), len(c.sites))
	}
	return out
}

// probeDevice is a device of the first site that the load does not use.
func (c *cluster) probeDevice(load []registry.Credential) registry.Credential {
	for _, cr := range c.creds {
		if cr.Site == load[0].Site && cr.Asset != load[0].Asset && !strings.HasPrefix(cr.Asset, registry.GatewayType) {
			return cr
		}
	}
	c.t.Fatal("no probe device")
	return registry.Credential{}
}

type ack struct {
	host int
	at   time.Time
}

type load struct {
	t     *testing.T
	ips   []string
	devs  []registry.Credential
	began time.Time

	mu      sync.Mutex
	sent    map[int64]int  // id -> device
	acked   map[int64]ack  // id -> who acknowledged it, when
	unacked map[int64]bool // sent, never acknowledged
	on      []atomic.Int32 // host each device is connected to, -1 none
	fails   atomic.Int64   // publishes not acknowledged
	refused atomic.Int64   // connections that failed

	stop chan struct{}
	wg   sync.WaitGroup
}

// startLoad starts the devices, device w on host w mod 3, and a progress
// line every 2 s; halt (also at cleanup) stops them.
func (c *cluster) startLoad(devs []registry.Credential) *load {
	l := &load{t: c.t, devs: devs, began: time.Now(), sent: map[int64]int{}, acked: map[int64]ack{}, unacked: map[int64]bool{},
		on: make([]atomic.Int32, len(devs)), stop: make(chan struct{})}
	for i := range hosts {
		l.ips = append(l.ips, hostIP(i))
	}
	for w := range devs {
		l.on[w].Store(-1)
		l.wg.Go(func() { l.device(w) })
	}
	l.wg.Go(l.progress)
	c.t.Cleanup(l.halt)
	return l
}

func (l *load) stopped() bool {
	select {
	case <-l.stop:
		return true
	default:
		return false
	}
}

// sleep waits d or until the load stops.
func (l *load) sleep(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-l.stop:
	}
}

func (l *load) device(w int) {
	cr := l.devs[w]
	host := w % len(l.ips)
	var seq int64
	for !l.stopped() {
		o := paho.NewClientOptions().AddBroker("tcp://" + l.ips[host] + ":1883").SetClientID(cr.Username).
			SetUsername(cr.Username).SetPassword(cr.Password).SetCleanSession(true).SetAutoReconnect(false).
			SetConnectTimeout(2 * time.Second).SetWriteTimeout(2 * time.Second).SetKeepAlive(5 * time.Second).
			SetPingTimeout(2 * time.Second)
		cl := paho.NewClient(o)
		if tok := cl.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			l.refused.Add(1)
			host = (host + 1) % len(l.ips)
			l.sleep(100 * time.Millisecond)
			continue
		}
		l.on[w].Store(int32(host))
		for !l.stopped() {
			seq++
			id := int64(w)*idStride + seq
			l.mu.Lock()
			l.sent[id] = w
			l.mu.Unlock()
			tok := cl.Publish(topicOf(cr), 1, false, payload(id))
			if tok.WaitTimeout(publishTimeout) && tok.Error() == nil {
				l.mu.Lock()
				l.acked[id] = ack{host: host, at: time.Now()}
				l.mu.Unlock()
				l.sleep(pause)
				continue
			}
			l.mu.Lock()
			l.unacked[id] = true
			l.mu.Unlock()
			l.fails.Add(1)
			break
		}
		l.on[w].Store(-1)
		cl.Disconnect(0)
		if !l.stopped() {
			host = (host + 1) % len(l.ips)
		}
	}
}

// progress logs a line every 2 s: acknowledged messages and their rate,
// failures, and the devices on each host.
func (l *load) progress() {
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	last, lastAt := 0, time.Now()
	for {
		select {
		case <-l.stop:
			return
		case now := <-tick.C:
			l.mu.Lock()
			n, un := len(l.acked), len(l.unacked)
			l.mu.Unlock()
			on := make([]int, len(l.ips))
			for w := range l.on {
				if h := l.on[w].Load(); h >= 0 {
					on[h]++
				}
			}
			l.t.Logf("load %5.1fs: %d acknowledged (%.0f/s), %d not acknowledged, %d connections failed; devices on hosts %v",
				now.Sub(l.began).Seconds(), n, float64(n-last)/now.Sub(lastAt).Seconds(), un, l.refused.Load(), on)
			last, lastAt = n, now
		}
	}
}

func (l *load) halt() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.wg.Wait()
}

func (l *load) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acked)
}

// sentProbe records a probe's id like a device's.
func (l *load) sentProbe(id int64, acked bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sent[id] = -1
	if acked {
		l.acked[id] = ack{host: -1, at: time.Now()}
	} else {
		l.unacked[id] = true
	}
}

// waitAckedByEach waits until every host has acknowledged n messages.
func (l *load) waitAckedByEach(c *cluster, n int) {
	per := make([]int, len(l.ips))
	testutil.Eventually(l.t, 2*time.Minute, 200*time.Millisecond, func() bool {
		clear(per)
		l.mu.Lock()
		for _, a := range l.acked {
			if a.host >= 0 {
				per[a.host]++
			}
		}
		l.mu.Unlock()
		return slices.Min(per) >= n
	}, "%d messages acknowledged by each host: %v", n, testutil.Lazy(func() any { return per }))
}

// devicesOn lists the devices connected to host h now.
func (l *load) devicesOn(h int) []int {
	var out []int
	for w := range l.on {
		if int(l.on[w].Load()) == h {
			out = append(out, w)
		}
	}
	if len(out) == 0 {
		l.t.Fatalf("no device on host %d", h+1)
	}
	return out
}

// waitMoved waits until each of the devices has had a message
// acknowledged by a host other than gone since the fault, and logs how
// long the last of them took.
func (l *load) waitMoved(devs []int, gone int, since time.Time) {
	var stuck []int
	first := map[int]time.Time{} // device -> its first acknowledgement elsewhere
	testutil.Eventually(l.t, 2*time.Minute, 200*time.Millisecond, func() bool {
		clear(first)
		l.mu.Lock()
		for id, a := range l.acked {
			if w := l.sent[id]; a.host >= 0 && a.host != gone && a.at.After(since) && (first[w].IsZero() || a.at.Before(first[w])) {
				first[w] = a.at
			}
		}
		l.mu.Unlock()
		stuck = stuck[:0]
		for _, w := range devs {
			if first[w].IsZero() {
				stuck = append(stuck, w)
			}
		}
		return len(stuck) == 0
	}, "the devices of host %d publishing through the others; still not: %v", gone+1, testutil.Lazy(func() any { return stuck }))
	var last time.Time
	for _, w := range devs {
		if first[w].After(last) {
			last = first[w]
		}
	}
	l.t.Logf("the %d devices of host %d publish through the others: the last one's first acknowledgement there came %s after the fault",
		len(devs), gone+1, last.Sub(since).Round(10*time.Millisecond))
}

// waitMore waits for n more acknowledgements.
func (l *load) waitMore(n int) {
	from := l.count()
	testutil.Eventually(l.t, 2*time.Minute, 200*time.Millisecond, func() bool { return l.count() >= from+n },
		"%d more messages acknowledged (from %d): %v", n, from, testutil.Lazy(func() any { return l.count() }))
}

// stored reads every id ClickHouse holds, with how many times (FINAL:
// the same Kafka record inserted twice is one row).
func (l *load) stored(c *cluster) map[int64]uint64 {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rows, err := c.conn.Query(ctx, fmt.Sprintf("SELECT toInt64(value) AS id, count() AS n FROM %s.telemetry FINAL WHERE metric = ? GROUP BY id", c.db), metric)
	if err != nil {
		l.t.Fatal(err)
	}
	defer rows.Close()
	out := map[int64]uint64{}
	for rows.Next() {
		var id int64
		var n uint64
		if err := rows.Scan(&id, &n); err != nil {
			l.t.Fatal(err)
		}
		out[id] = n
	}
	if err := rows.Err(); err != nil {
		l.t.Fatal(err)
	}
	return out
}

func (l *load) storedCount(c *cluster, id int64) uint64 { return l.stored(c)[id] }

func (l *load) scalar(c *cluster, q string) uint64 {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var n uint64
	if err := c.conn.QueryRow(ctx, fmt.Sprintf(q, c.db), metric).Scan(&n); err != nil {
		l.t.Fatal(err)
	}
	return n
}

// verifyExactlyOnce checks ClickHouse against what the devices were told:
// every acknowledged id once, no id twice, nothing that was not sent, and
// the exact rollups counting every stored point once.
func (l *load) verifyExactlyOnce(c *cluster) {
	t := l.t
	l.mu.Lock()
	acked := make(map[int64]bool, len(l.acked))
	for id := range l.acked {
		acked[id] = true
	}
	unacked := len(l.unacked)
	sent := len(l.sent)
	l.mu.Unlock()
	var got map[int64]uint64
	var missing, twice int
	testutil.Eventually(t, 2*time.Minute, time.Second, func() bool {
		got = l.stored(c)
		missing, twice = 0, 0
		for id := range acked {
			switch got[id] {
			case 0:
				missing++
			case 1:
			default:
				twice++
			}
		}
		return missing == 0
	}, "every acknowledged message in ClickHouse: %d acknowledged, %v missing", len(acked), testutil.Lazy(func() any { return missing }))
	var total uint64
	for id, n := range got {
		l.mu.Lock()
		_, wasSent := l.sent[id]
		l.mu.Unlock()
		if !wasSent {
			t.Errorf("id %d is stored but was never sent", id)
		}
		if n != 1 {
			t.Errorf("id %d is stored %d times", id, n)
		}
		total += n
	}
	if twice > 0 {
		t.Fatalf("%d acknowledged messages stored more than once", twice)
	}
	t.Logf("exactly once: %d sent, %d acknowledged, each stored once; %d not acknowledged, of which %d stored (once)",
		sent, len(acked), unacked, len(got)-len(acked))
	for _, table := range []string{"telemetry_1m", "telemetry_1h"} {
		q := "SELECT toUInt64(sum(count)) FROM %s." + table + " FINAL WHERE metric = ?"
		testutil.Eventually(t, time.Minute, time.Second, func() bool { return l.scalar(c, q) == total },
			"%s counts every stored point once: %v of %d", table, testutil.Lazy(func() any { return l.scalar(c, q) }), total)
	}
	t.Logf("rollups: telemetry_1m and telemetry_1h count the %d points once", total)
}

// newestStored is, for each device of the load, the newest id ClickHouse
// has (ids grow with time on a device).
func (l *load) newestStored(c *cluster) map[string]int64 {
	out := map[string]int64{}
	for id := range l.stored(c) {
		w := int(id / idStride)
		if id >= probeID || w >= len(l.devs) {
			continue
		}
		dev := l.devs[w].Site + "/" + l.devs[w].Asset
		out[dev] = max(out[dev], id)
	}
	return out
}
