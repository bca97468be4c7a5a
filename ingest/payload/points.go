package payload

import (
	"math"
	"strconv"

	"github.com/polis-platform/polis/ingest/record"
)

// Booleans are accepted as metric values (true = 1, false = 0): door_open,
// screen_on and connector states are naturally booleans on devices, and a
// 0/1 series is what the storage and rules want anyway.
func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// points appends validated points for one message to dst.
type points struct {
	w     window
	dst   []record.Point
	start int // first point of this message in dst
	seen  map[string]struct{}
}

func (p *points) n() int { return len(p.dst) - p.start }

// add appends one point. Its errors do not name the point: callers add that
// context on the (rare) error path, keeping the hot path free of string work.
func (p *points) add(metric string, ts int64, v float64, c conv) *Error {
	if p.n() >= p.w.maxPoints {
		return fail(CodeTooMany, "more than "+strconv.Itoa(p.w.maxPoints)+" points in one message; split it")
	}
	v = c.apply(v)
	if math.IsInf(v, 0) || math.IsNaN(v) {
		return fail(CodeNonFinite, "the value is not finite after unit conversion to "+metric)
	}
	p.dst = append(p.dst, record.Point{Metric: metric, TS: ts, Value: v, Late: ts < p.w.late})
	return nil
}

// duplicate reports whether metric is already among this message's points,
// and remembers it. A JSON telemetry message has one timestamp, so a repeated
// name (also after unit normalisation: temp_f and temp_c) is two values for
// one sample.
func (p *points) duplicate(metric string) bool {
	const linear = 16 // a map costs more than scanning a few short strings
	ps := p.dst[p.start:]
	if p.seen == nil {
		if len(ps) < linear {
			for i := range ps {
				if ps[i].Metric == metric {
					return true
				}
			}
			return false
		}
		p.seen = make(map[string]struct{}, 2*len(ps))
		for i := range ps {
			p.seen[ps[i].Metric] = struct{}{}
		}
	}
	if _, dup := p.seen[metric]; dup {
		return true
	}
	p.seen[metric] = struct{}{}
	return false
}

// setTS stamps all points of the message once its timestamp is known (the
// "ts" key may come after "m").
func (p *points) setTS(ts int64) {
	late := ts < p.w.late
	for i := p.start; i < len(p.dst); i++ {
		p.dst[i].TS = ts
		p.dst[i].Late = late
	}
}
