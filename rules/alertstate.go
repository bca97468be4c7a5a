package rules

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/polis-platform/polis/kafka"
	"github.com/polis-platform/polis/rules/engine"
	"github.com/polis-platform/polis/twin/state"
)

// The alert state survives a restart and a partition moving to another
// instance through two compacted topics (kafka/alerts.go):
//
//   - polis.alertstate.v1, key SITE/FINGERPRINT, partitioned by site like
//     the twin's topics: the whole state of every alert (engine.Saved),
//     written after every change, deleted when the engine forgets the
//     alert. When the twin gains a partition (Gained) the alerts of its
//     sites are read from the same partition number and restored before
//     the twin applies a record, so an open alert stays open with its
//     occurrence, acknowledgement and assignee and is not fired again.
//     When the twin loses one (Released) its sites leave the evaluator and
//     the engine, and what this instance still had to write is flushed
//     first, so the next owner reads it.
//   - polis.silences.v1, key = silence id, one partition: every instance
//     replays it before it is ready and follows it, so a silence set on
//     one instance holds on all of them.

// stateVersion is the version of the records of both topics.
const stateVersion = 1

type alertStateRecord struct {
	V           int        `json:"v"`
	Rev         uint64     `json:"rev"`
	Fingerprint string     `json:"fingerprint"`
	RuleID      string     `json:"rule_id"`
	Site        string     `json:"site"`
	Asset       string     `json:"asset"`
	State       string     `json:"state"`
	Severity    string     `json:"severity"`
	Summary     string     `json:"summary"`
	Value       float64    `json:"value"`
	ActiveAt    int64      `json:"active_at,omitempty"` // Unix ms; 0 unset
	FiredAt     int64      `json:"fired_at,omitempty"`
	ResolvedAt  int64      `json:"resolved_at,omitempty"`
	LastEval    int64      `json:"last_eval,omitempty"`
	Ack         *ackRecord `json:"ack,omitempty"`
	Assignee    string     `json:"assignee,omitempty"`
	Flapping    bool       `json:"flapping,omitempty"`
	Occurrence  int        `json:"occurrence"`
	Level       int        `json:"level,omitempty"`
	Notified    bool       `json:"notified,omitempty"`
	OpenSince   int64      `json:"open_since,omitempty"`
	LastNotify  int64      `json:"last_notify,omitempty"`
	ClearSince  int64      `json:"clear_since,omitempty"`
	UnderFire   bool       `json:"under_fire,omitempty"`
	Changes     []int64    `json:"changes,omitempty"`
}

type ackRecord struct {
	By      string `json:"by"`
	Comment string `json:"comment,omitempty"`
	At      int64  `json:"at"`
}

func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v)
}

// stateKey is the key of an alert on polis.alertstate.v1: its site first,
// so that kafka.SitePartitioner puts it in its site's partition.
func stateKey(site, fingerprint string) string { return site + "/" + fingerprint }

// encodeAlertState encodes an alert's state; nil is a tombstone (nil).
func encodeAlertState(sv *engine.Saved) ([]byte, error) {
	if sv == nil {
		return nil, nil
	}
	a := sv.Alert
	r := alertStateRecord{V: stateVersion, Rev: sv.Rev, Fingerprint: a.Fingerprint, RuleID: a.RuleID, Site: a.Site, Asset: a.Asset,
		State: a.State.String(), Severity: a.Severity, Summary: a.Summary, Value: a.Value,
		ActiveAt: ms(a.ActiveAt), FiredAt: ms(a.FiredAt), ResolvedAt: ms(a.ResolvedAt), LastEval: ms(a.LastEval),
		Assignee: a.Assignee, Flapping: a.Flapping, Occurrence: a.Occurrence, Level: a.Level,
		Notified: sv.Notified, OpenSince: ms(sv.OpenSince), LastNotify: ms(sv.LastNotify), ClearSince: ms(sv.ClearSince),
		UnderFire: sv.UnderFire}
	if math.IsNaN(r.Value) || math.IsInf(r.Value, 0) {
		r.Value = 0 // JSON has no NaN; the value is informative only
	}
	if a.Ack != nil {
		r.Ack = &ackRecord{By: a.Ack.By, Comment: a.Ack.Comment, At: ms(a.Ack.At)}
	}
	for _, c := range sv.Changes {
		r.Changes = append(r.Changes, ms(c))
	}
	return json.Marshal(r)
}

func decodeAlertState(b []byte) (engine.Saved, error) {
	var r alertStateRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return engine.Saved{}, fmt.Errorf("cannot decode alert state: %w", err)
	}
	if r.V != stateVersion {
		return engine.Saved{}, fmt.Errorf("cannot decode alert state: version %d, want %d", r.V, stateVersion)
	}
	st, err := engine.ParseState(r.State)
	if err != nil {
		return engine.Saved{}, fmt.Errorf("cannot decode alert state: %w", err)
	}
	if r.Fingerprint == "" || r.RuleID == "" || r.Site == "" || r.Asset == "" {
		return engine.Saved{}, errors.New("cannot decode alert state: fingerprint, rule, site or asset missing")
	}
	sv := engine.Saved{Alert: engine.Alert{Fingerprint: r.Fingerprint, RuleID: r.RuleID, Site: r.Site, Asset: r.Asset, State: st,
		Severity: r.Severity, Summary: r.Summary, Value: r.Value, ActiveAt: fromMS(r.ActiveAt), FiredAt: fromMS(r.FiredAt),
		ResolvedAt: fromMS(r.ResolvedAt), LastEval: fromMS(r.LastEval), Assignee: r.Assignee, Flapping: r.Flapping,
		Occurrence: r.Occurrence, Level: r.Level},
		Rev: r.Rev, Notified: r.Notified, OpenSince: fromMS(r.OpenSince), LastNotify: fromMS(r.LastNotify),
		ClearSince: fromMS(r.ClearSince), UnderFire: r.UnderFire}
	if r.Ack != nil {
		sv.Ack = &engine.Ack{By: r.Ack.By, Comment: r.Ack.Comment, At: fromMS(r.Ack.At)}
	}
	for _, c := range r.Changes {
		sv.Changes = append(sv.Changes, fromMS(c))
	}
	return sv, nil
}

type silenceRecord struct {
	V         int             `json:"v"`
	ID        string          `json:"id"`
	Matchers  []matcherRecord `json:"matchers"`
	Start     int64           `json:"start"` // Unix ms
	End       int64           `json:"end"`
	CreatedBy string          `json:"created_by,omitempty"`
	Comment   string          `json:"comment,omitempty"`
}

type matcherRecord struct {
	Label string `json:"label"`
	Value string `json:"value"`
	Regex bool   `json:"regex,omitempty"`
}

func encodeSilence(s engine.Silence) ([]byte, error) {
	r := silenceRecord{V: stateVersion, ID: s.ID, Start: ms(s.Start), End: ms(s.End), CreatedBy: s.CreatedBy, Comment: s.Comment}
	for _, m := range s.Matchers {
		r.Matchers = append(r.Matchers, matcherRecord(m))
	}
	return json.Marshal(r)
}

func decodeSilence(b []byte) (engine.Silence, error) {
	var r silenceRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return engine.Silence{}, fmt.Errorf("cannot decode silence: %w", err)
	}
	if r.V != stateVersion {
		return engine.Silence{}, fmt.Errorf("cannot decode silence: version %d, want %d", r.V, stateVersion)
	}
	si := engine.Silence{ID: r.ID, Start: fromMS(r.Start), End: fromMS(r.End), CreatedBy: r.CreatedBy, Comment: r.Comment}
	for _, m := range r.Matchers {
		si.Matchers = append(si.Matchers, engine.Matcher(m))
	}
	return si, nil
}

// persists reports whether the service keeps alert state on Kafka (it
// has brokers to read it back from).
func (s *Service) persists() bool { return len(s.o.Brokers) > 0 }

// followSilences replays polis.silences.v1 into the engine and follows it.
func (s *Service) followSilences(ctx context.Context) error {
	f := kafka.NewFollower(s.o.Brokers, kafka.TopicSilences, s.log, func(r *kgo.Record) {
		id := string(r.Key)
		if r.Value == nil {
			_ = s.ev.eng.Unsilence(id) // not found: removed here already
			return
		}
		si, err := decodeSilence(r.Value)
		if err != nil {
			s.log.Warn("silence not loaded", "id", id, "err", err)
			return
		}
		if !time.Now().Before(si.End) {
			return // expired
		}
		if err := s.ev.eng.Silence(si); err != nil {
			s.log.Warn("silence not loaded", "id", id, "err", err)
		}
	}, s.o.Kafka.Opts()...)
	f.OnCaughtUp(func(n int) {
		s.log.Info("silences loaded", "records", n, "active", len(s.ev.eng.Silences()))
		s.caughtUp()
	})
	return f.Run(ctx)
}

// readAlertState reads the alerts of the sites from the partitions of
// polis.alertstate.v1, the newest record of each key.
func (s *Service) readAlertState(ctx context.Context, parts []int32, sites map[string]bool) ([]engine.Saved, error) {
	offs := map[int32]kgo.Offset{}
	for _, p := range parts {
		offs[p] = kgo.NewOffset().AtStart()
	}
	cl, err := s.o.Kafka.NewClient(s.o.Brokers, s.log, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{kafka.TopicAlertState: offs}),
		kgo.FetchMaxBytes(64<<20))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	adm := kadm.NewClient(cl)
	ends, err := adm.ListEndOffsets(ctx, kafka.TopicAlertState)
	if err != nil {
		return nil, fmt.Errorf("cannot read the end of %s: %w", kafka.TopicAlertState, err)
	}
	starts, err := adm.ListStartOffsets(ctx, kafka.TopicAlertState)
	if err != nil {
		return nil, fmt.Errorf("cannot read the start of %s: %w", kafka.TopicAlertState, err)
	}
	pending := map[int32]int64{}
	for _, p := range parts {
		end, ok := ends.Lookup(kafka.TopicAlertState, p)
		if !ok || end.Err != nil {
			return nil, fmt.Errorf("cannot read the end of %s partition %d", kafka.TopicAlertState, p)
		}
		if start, ok := starts.Lookup(kafka.TopicAlertState, p); ok && start.Err == nil && start.Offset >= end.Offset {
			continue
		}
		if end.Offset > 0 {
			pending[p] = end.Offset
		}
	}
	latest := map[string]*engine.Saved{}
	began, read := time.Now(), 0
	for len(pending) > 0 {
		pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
		fs := cl.PollFetches(pctx)
		pcancel()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("cannot read %s: %w", kafka.TopicAlertState, ctx.Err())
		}
		fs.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) {
				s.log.Warn("reading alert state", "topic", t, "partition", p, "err", err)
			}
		})
		if fs.NumRecords() == 0 {
			// Quiet while records are still expected: the tail was
			// compacted away (records came, so fetching works), or, after
			// a while, the whole partition was.
			if read > 0 || time.Since(began) > 10*time.Second {
				break
			}
			continue
		}
		read += fs.NumRecords()
		fs.EachRecord(func(r *kgo.Record) {
			if end, ok := pending[r.Partition]; ok && r.Offset+1 >= end {
				delete(pending, r.Partition)
			}
			key := string(r.Key)
			if !sites[kafka.SiteOf(r.Key)] {
				return
			}
			if r.Value == nil {
				delete(latest, key)
				return
			}
			sv, err := decodeAlertState(r.Value)
			if err != nil {
				s.log.Warn("alert state not restored", "key", key, "err", err)
				return
			}
			latest[key] = &sv
		})
	}
	out := make([]engine.Saved, 0, len(latest))
	for _, sv := range latest {
		out = append(out, *sv)
	}
	return out, nil
}

// Gained is the twin's hook for partitions this instance has just gained,
// with their stores restored and before any of their records is applied:
// the alerts of their sites are restored from polis.alertstate.v1 and
// their assets enter the evaluator (and so the clock) on these stores. An
// error fails the assignment, as an unreadable twin snapshot does.
func (s *Service) Gained(ctx context.Context, stores map[int32]*state.Store) error {
	parts := make([]int32, 0, len(stores))
	sites := map[string]bool{}
	for p, st := range stores {
		parts = append(parts, p)
		for _, site := range st.Sites() {
			sites[site] = true
		}
	}
	slices.Sort(parts)
	var saved []engine.Saved
	if s.persists() {
		var err error
		if saved, err = s.readAlertState(ctx, parts, sites); err != nil {
			return fmt.Errorf("cannot restore the alerts of partitions %v: %w", parts, err)
		}
	}
	s.relMu.Lock()
	assets := 0
	for _, st := range stores {
		assets += s.ev.AddSites(st, st.Sites())
	}
	restored, skipped := s.ev.eng.Restore(saved)
	s.relMu.Unlock()
	if len(skipped) > 0 {
		// Their rules are gone: their state goes too.
		site := map[string]string{}
		for _, sv := range saved {
			site[sv.Fingerprint] = sv.Site
		}
		for _, fp := range skipped {
			s.out.state(stateKey(site[fp], fp), 0, nil)
		}
	}
	open := 0
	for _, sv := range saved {
		if sv.State == engine.StateFiring || sv.State == engine.StateNoData || sv.State == engine.StatePending {
			open++
		}
	}
	s.log.Info("alerts restored", "partitions", parts, "sites", len(sites), "assets", assets, "alerts", restored,
		"open", open, "rule_gone", len(skipped))
	return nil
}

// Released is the twin's hook for partitions this instance has just lost
// (the twin no longer applies their records): their sites leave the
// evaluator and the engine, so no alert is evaluated on their frozen
// twin, and the alert changes still queued are written before the next
// owner reads them (within HandoverTimeout; past it they are written
// later, and the next owner may start from an older state).
func (s *Service) Released(ctx context.Context, stores map[int32]*state.Store) {
	parts := make([]int32, 0, len(stores))
	var sites []string
	for p, st := range stores {
		parts = append(parts, p)
		sites = append(sites, st.Sites()...)
	}
	slices.Sort(parts)
	s.relMu.Lock()
	assets, alerts := s.ev.DropSites(sites)
	s.relMu.Unlock()
	flushed := true
	if s.persists() {
		// Without ctx's cancellation: the twin's client cancels it when it
		// closes, which is when it hands every partition over.
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.o.HandoverTimeout)
		flushed = s.out.waitIdle(wctx)
		cancel()
	}
	if !flushed {
		s.log.Warn("alert changes of released partitions not yet on Kafka; their next owner may restore an older state",
			"partitions", parts, "queued", s.out.Len())
	}
	s.log.Info("alerts released", "partitions", parts, "sites", len(sites), "assets", assets, "alerts", alerts)
}
