package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/polis-platform/polis/twin/registry"
)

// The probe's cadence and metric.
const (
	probeInterval = 100 * time.Millisecond
	probePoll     = 25 * time.Millisecond
	probeMetric   = "probe_seq_count"
	// probeGrace is how long the poller keeps looking for acknowledged
	// probes once the publisher has stopped.
	probeGrace = 30 * time.Second
)

// ProbeResult is the publish-to-queryable latency of the probe device.
type ProbeResult struct {
	Device            string
	Sent, Acked, Seen int
	// AckLat is publish to PUBACK (the broker acknowledges QoS 1 once Kafka
	// has the record); SeenLat is publish to the first poll that returned
	// the row. Both sorted.
	AckLat, SeenLat []time.Duration
	Polls           int
	PollTime        time.Duration // mean time of one poll query
	PollErrors      int
	Problems        []string
}

// probe publishes one numbered telemetry point every probeInterval as a
// device of its own and polls ClickHouse for the rows.
type probe struct {
	cred   registry.Credential
	client mqtt.Client
	conn   driver.Conn
	db     string
	topic  string
	log    *slog.Logger

	mu        sync.Mutex
	pubAt     map[int]time.Time
	acked     map[int]time.Duration
	seen      map[int]time.Duration
	failed    int
	polls     int
	pollTime  time.Duration
	pollErrs  int
	pubDone   chan struct{}
	highestPb int
	since     int64 // Unix seconds: rows of earlier runs are older
}

// startProbe connects the probe device to the broker.
func startProbe(ctx context.Context, broker string, cred registry.Credential, conn driver.Conn, db string, log *slog.Logger) (*probe, error) {
	p := &probe{cred: cred, conn: conn, db: db, log: log.With("component", "probe"),
		topic: "polis/v1/" + cred.Site + "/" + cred.Asset + "/telemetry",
		pubAt: map[int]time.Time{}, acked: map[int]time.Duration{}, seen: map[int]time.Duration{},
		pubDone: make(chan struct{}), since: time.Now().Unix() - 1}
	o := mqtt.NewClientOptions().AddBroker(broker).SetClientID(cred.Username).
		SetUsername(cred.Username).SetPassword(cred.Password).SetCleanSession(true).
		SetConnectTimeout(10 * time.Second).SetWriteTimeout(10 * time.Second).SetKeepAlive(30 * time.Second).
		SetAutoReconnect(true).SetMaxReconnectInterval(2 * time.Second).SetOrderMatters(false)
	p.client = mqtt.NewClient(o)
	tok := p.client.Connect()
	select {
	case <-tok.Done():
	case <-ctx.Done():
		return nil, fmt.Errorf("cannot connect probe %s: %w", cred.Username, ctx.Err())
	}
	if err := tok.Error(); err != nil {
		return nil, fmt.Errorf("cannot connect probe %s to %s: %w", cred.Username, broker, err)
	}
	return p, nil
}

// publish sends probes until ctx ends or limit probes went out, then waits
// (bounded) for their acknowledgements.
func (p *probe) publish(ctx context.Context, limit int) {
	defer close(p.pubDone)
	tick := time.NewTicker(probeInterval)
	defer tick.Stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for seq := 1; seq <= limit; seq++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		at := time.Now()
		payload := fmt.Sprintf(`{"ts":%d,"m":{%q:%d}}`, at.UnixMilli(), probeMetric, seq)
		p.mu.Lock()
		p.pubAt[seq] = at
		p.highestPb = seq
		p.mu.Unlock()
		tok := p.client.Publish(p.topic, 1, false, payload)
		wg.Go(func() {
			ok := tok.WaitTimeout(15*time.Second) && tok.Error() == nil
			d := time.Since(at)
			p.mu.Lock()
			defer p.mu.Unlock()
			if ok {
				p.acked[seq] = d
			} else {
				p.failed++
			}
		})
	}
}

// lowestOutstanding is the lowest published probe not yet seen, 0 if none;
// done reports that the publisher stopped and every acknowledged probe
// was seen.
func (p *probe) lowestOutstanding() (low int, done bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	published := false
	select {
	case <-p.pubDone:
		published = true
	default:
	}
	for seq := 1; seq <= p.highestPb; seq++ {
		if _, ok := p.seen[seq]; ok {
			continue
		}
		if low == 0 {
			low = seq
		}
		if _, ok := p.acked[seq]; ok {
			return low, false
		}
	}
	return low, published && len(p.acked)+p.failed >= p.highestPb
}

// poll queries ClickHouse every probePoll for the outstanding probes until
// all acknowledged ones are seen, probeGrace after the publisher stopped,
// or ctx ends.
func (p *probe) poll(ctx context.Context) {
	tick := time.NewTicker(probePoll)
	defer tick.Stop()
	var graceEnd <-chan time.Time
	q := "SELECT value FROM " + p.db + ".telemetry WHERE site = ? AND asset = ? AND metric = '" + probeMetric + "' AND ts >= toDateTime(?) AND value > ?"
	for {
		select {
		case <-ctx.Done():
			return
		case <-graceEnd:
			return
		case <-tick.C:
		}
		if graceEnd == nil {
			select {
			case <-p.pubDone:
				graceEnd = time.After(probeGrace)
			default:
			}
		}
		low, done := p.lowestOutstanding()
		if done {
			return
		}
		if low == 0 {
			continue
		}
		started := time.Now()
		vals, err := p.query(ctx, q, float64(low-1))
		took := time.Since(started)
		p.mu.Lock()
		p.polls++
		p.pollTime += took
		if err != nil {
			p.pollErrs++
			if p.pollErrs <= 3 {
				p.log.Warn("probe poll failed", "err", err)
			}
		}
		for _, v := range vals {
			seq := int(v)
			at, ok := p.pubAt[seq]
			if _, dup := p.seen[seq]; ok && !dup {
				// The row was visible when this query started.
				p.seen[seq] = started.Sub(at)
			}
		}
		p.mu.Unlock()
	}
}

func (p *probe) query(ctx context.Context, q string, above float64) ([]float64, error) {
	qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	rows, err := p.conn.Query(qctx, q, p.cred.Site, p.cred.Asset, p.since, above)
	if err != nil {
		return nil, fmt.Errorf("cannot query probe rows: %w", err)
	}
	defer rows.Close()
	var out []float64
	for rows.Next() {
		var v float64
		if err := rows.Scan(&v); err != nil {
			return out, fmt.Errorf("cannot read probe row: %w", err)
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

func (p *probe) close() {
	p.client.Disconnect(250)
}

func (p *probe) result() *ProbeResult {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := &ProbeResult{Device: p.cred.Username, Sent: len(p.pubAt), Acked: len(p.acked), Seen: len(p.seen),
		Polls: p.polls, PollErrors: p.pollErrs}
	if p.polls > 0 {
		r.PollTime = p.pollTime / time.Duration(p.polls)
	}
	for _, d := range p.acked {
		r.AckLat = append(r.AckLat, d)
	}
	for _, d := range p.seen {
		r.SeenLat = append(r.SeenLat, d)
	}
	slices.Sort(r.AckLat)
	slices.Sort(r.SeenLat)
	if p.failed > 0 {
		r.Problems = append(r.Problems, fmt.Sprintf("%d of %d probe publishes were not acknowledged within 15s", p.failed, r.Sent))
	}
	missing := 0
	for seq := range p.acked {
		if _, ok := p.seen[seq]; !ok {
			missing++
		}
	}
	if missing > 0 {
		r.Problems = append(r.Problems, fmt.Sprintf("LOSS: %d acknowledged probe points never became queryable in ClickHouse (waited %s after the last publish)", missing, probeGrace))
	}
	return r
}

// percentile is the nearest-rank q-quantile of sorted ds.
func percentile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	i := int(q*float64(len(ds))+0.999999) - 1
	return ds[min(max(i, 0), len(ds)-1)]
}
