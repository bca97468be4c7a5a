package storage

import (
	"encoding/json"
	"time"

	"github.com/polis-platform/polis/ingest/record"
	"github.com/polis-platform/polis/storage/schema"
)

// alertRows is the alert history's share of a batch.
type alertRows struct {
	legacy                                       bool
	ts                                           []time.Time
	tsMS                                         []uint16
	kind                                         []string
	delivered, level                             []uint8
	fingerprint, ruleID, site, asset, state, sev []string
	summary, labels, ackedBy, assignee           []string
	value                                        []float64
	activeAt, firedAt, resolvedAt                []time.Time
	occurrence                                   []uint32
}

func (r *alertRows) name() string { return schema.TableAlerts }

func (r *alertRows) columns() []string {
	cols := []string{"ts"}
	if r.legacy {
		cols = append(cols, "ts_ms")
	}
	return append(cols, "kind", "delivered", "level", "fingerprint", "rule_id", "site", "asset", "state", "severity",
		"summary", "labels", "value", "active_at", "fired_at", "resolved_at", "acked_by", "assignee", "occurrence")
}

func (r *alertRows) values() []any {
	v := []any{r.ts}
	if r.legacy {
		v = append(v, r.tsMS)
	}
	return append(v, r.kind, r.delivered, r.level, r.fingerprint, r.ruleID, r.site, r.asset, r.state, r.sev,
		r.summary, r.labels, r.value, r.activeAt, r.firedAt, r.resolvedAt, r.ackedBy, r.assignee, r.occurrence)
}

func (r *alertRows) len() int { return len(r.ts) }

func (r *alertRows) reset() {
	*r = alertRows{legacy: r.legacy}
}

func msOrZero(ms int64) time.Time {
	if ms <= 0 {
		return time.Unix(0, 0).UTC()
	}
	return time.UnixMilli(ms).UTC()
}

func (r *alertRows) add(a *record.AlertChange) {
	r.ts = append(r.ts, time.UnixMilli(a.At).UTC())
	r.tsMS = append(r.tsMS, uint16(a.At%1000))
	r.kind = append(r.kind, a.Kind)
	var d uint8
	if a.Deliver {
		d = 1
	}
	r.delivered = append(r.delivered, d)
	r.level = append(r.level, uint8(min(a.Level, 255)))
	r.fingerprint = append(r.fingerprint, a.Fingerprint)
	r.ruleID = append(r.ruleID, a.RuleID)
	r.site = append(r.site, a.Site)
	r.asset = append(r.asset, a.Asset)
	r.state = append(r.state, a.State)
	r.sev = append(r.sev, a.Severity)
	r.summary = append(r.summary, a.Summary)
	labels, _ := json.Marshal(a.Labels)
	r.labels = append(r.labels, string(labels))
	r.value = append(r.value, a.Value)
	r.activeAt = append(r.activeAt, msOrZero(a.ActiveAt))
	r.firedAt = append(r.firedAt, msOrZero(a.FiredAt))
	r.resolvedAt = append(r.resolvedAt, msOrZero(a.ResolvedAt))
	r.ackedBy = append(r.ackedBy, a.AckedBy)
	r.assignee = append(r.assignee, a.Assignee)
	r.occurrence = append(r.occurrence, uint32(max(a.Occurrence, 0)))
}
