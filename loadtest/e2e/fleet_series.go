package e2e

import (
	"context"
	"maps"
	"sync"
	"time"
)

// Metrics the sampler reads from every platform process each second.
const (
	metricIngested  = "polis_broker_publishes_ingested_total"
	metricConnected = "polis_broker_clients_connected"
	metricLag       = "polis_storage_consumer_lag"
	metricRows      = `polis_storage_rows_written_total{table="telemetry"}`
)

// Sample is the state of a fleet run at one second: counters are
// cumulative (the plots show their rates), the rest instantaneous.
type Sample struct {
	At        time.Time
	Ingested  float64 // publishes the platform acknowledged (Kafka has them)
	Rows      float64 // telemetry rows ClickHouse accepted
	Connected float64
	Lag       float64 // records the storage writers are behind
	CPU       map[string]time.Duration
	RSS       map[string]int64
}

// sampler records a Sample a second from the platform's metrics and /proc.
type sampler struct {
	plats []*platform
	ch    *CHInfo

	mu     sync.Mutex
	kids   []*child
	lastOf map[int]map[string]float64 // each platform's last scrape
	ss     []Sample
	top    map[string]int64
}

func newSampler(plats []*platform, kids []*child, ch *CHInfo) *sampler {
	return &sampler{plats: plats, ch: ch, kids: append([]*child(nil), kids...), top: map[string]int64{}, lastOf: map[int]map[string]float64{}}
}

func (s *sampler) add(k *child) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.kids = append(s.kids, k)
}

func (s *sampler) run(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		s.take(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (s *sampler) take(ctx context.Context) {
	sm := Sample{At: time.Now(), CPU: map[string]time.Duration{}, RSS: map[string]int64{}}
	for i, p := range s.plats {
		if p == nil || p.exited() {
			continue
		}
		mctx, cancel := context.WithTimeout(ctx, 900*time.Millisecond)
		m, err := p.scrape(mctx)
		cancel()
		s.mu.Lock()
		if err != nil {
			// A saturated process may miss a scrape: its last answer
			// stands, rather than a dip in the plots.
			m = s.lastOf[i]
		} else {
			s.lastOf[i] = m
		}
		s.mu.Unlock()
		sm.Ingested += m[metricIngested]
		sm.Rows += m[metricRows]
		sm.Connected += m[metricConnected]
		sm.Lag += m[metricLag]
	}
	s.mu.Lock()
	kids := s.kids
	s.mu.Unlock()
	for _, k := range kids {
		if t := k.cpu(); t >= 0 {
			sm.CPU[k.comp] += t
		}
		if k.exited() {
			continue
		}
		if r := procRSS(k.pid()); r >= 0 {
			sm.RSS[k.comp] += r
		}
	}
	if s.ch.pid > 0 {
		if t := procCPUOf(s.ch.pid); t >= 0 {
			sm.CPU[compClickHouse] = t
		}
		if r := procRSS(s.ch.pid); r >= 0 {
			sm.RSS[compClickHouse] = r
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// A counter restarts when a process does; keep the series monotonic.
	if n := len(s.ss); n > 0 {
		prev := s.ss[n-1]
		sm.Ingested = max(sm.Ingested, prev.Ingested)
		sm.Rows = max(sm.Rows, prev.Rows)
	}
	s.ss = append(s.ss, sm)
	for c, r := range sm.RSS {
		s.top[c] = max(s.top[c], r)
	}
}

func (s *sampler) last() Sample {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.ss) == 0 {
		return Sample{}
	}
	return s.ss[len(s.ss)-1]
}

// connected is the connections the platform held at the last sample.
func (s *sampler) connected() int { return int(s.last().Connected) }

// ingested is the publishes acknowledged so far, read now.
func (s *sampler) ingested() float64 {
	var n float64
	for _, p := range s.plats {
		if p == nil {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		m, err := p.scrape(ctx)
		cancel()
		if err == nil {
			n += m[metricIngested]
		}
	}
	return n
}

func (s *sampler) samples() []Sample {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Sample(nil), s.ss...)
}

func (s *sampler) peak() map[string]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.top)
}
