package engine

import (
	"slices"
	"time"
)

// Saved is the whole state of one alert: what another engine needs to go
// on with it (after a restart, or on the instance that takes over its
// site) without opening it again. Labels, Silenced and InhibitedBy are not
// needed: Restore takes the labels from the rule, and the flags are
// recomputed at the alert's next evaluation or Tick.
type Saved struct {
	Alert
	// Rev orders the states and Forgotten of one engine: a higher Rev is
	// newer. It is not comparable across engines.
	Rev        uint64
	Notified   bool      // the opening of this occurrence was delivered
	OpenSince  time.Time // when it was delivered (escalation counts from here)
	LastNotify time.Time // the last delivered notification (reminders)
	ClearSince time.Time // since when Clear has held (keep_firing_for)
	UnderFire  bool      // the state without flap damping
	Changes    []time.Time
}

// Forgotten is an alert an engine dropped at the end of its life (its
// retention passed, or its rule was removed): its saved state should go.
type Forgotten struct {
	Fingerprint, Site string
	Rev               uint64
}

func (a *alert) save(rev uint64) *Saved {
	return &Saved{Alert: a.Alert, Rev: rev, Notified: a.notified, OpenSince: a.openSince, LastNotify: a.lastNotify,
		ClearSince: a.clearSince, UnderFire: a.underFire, Changes: slices.Clone(a.changes)}
}

// collect attaches the state of every alert that emitted since the last
// collect to its last notification in out (the call's output, which holds
// them all); an alert forgotten since has no state to save. s.mu is held.
func (s *shard) collect(out []Notification) {
	for _, a := range s.dirty {
		a.dirty = false
		if s.byFP[a.Fingerprint] != a {
			continue
		}
		for i := len(out) - 1; i >= 0; i-- {
			if out[i].Alert.Fingerprint == a.Fingerprint {
				out[i].State = a.save(s.e.rev.Add(1))
				break
			}
		}
	}
	clear(s.dirty)
	s.dirty = s.dirty[:0]
}

// TakeForgotten returns the alerts forgotten since the last call, oldest
// first within a shard. Tick and SetRules forget alerts.
func (e *Engine) TakeForgotten() []Forgotten {
	var out []Forgotten
	for _, s := range e.shards {
		s.mu.Lock()
		out = append(out, s.forgotten...)
		s.forgotten = s.forgotten[:0]
		s.mu.Unlock()
	}
	return out
}

// Restore loads saved alerts, as they were: an open alert stays open with
// its occurrence, acknowledgement, assignee and escalation, so a condition
// still true does not fire it again. An alert whose rule is gone is not
// loaded and its fingerprint is returned in skipped; one this engine
// already has keeps its own state. Call it before the alerts' sites are
// evaluated (when their partition is gained); silences should be in place
// already, since the flags are recomputed from them.
func (e *Engine) Restore(saved []Saved) (restored int, skipped []string) {
	rules := e.rules.Load().byID
	for i := range saved {
		sv := &saved[i]
		r := rules[sv.RuleID]
		if r == nil {
			skipped = append(skipped, sv.Fingerprint)
			continue
		}
		for cur := e.rev.Load(); cur < sv.Rev && !e.rev.CompareAndSwap(cur, sv.Rev); cur = e.rev.Load() {
		}
		s := e.shardOf(sv.Site)
		k := alertKey{sv.RuleID, sv.Site, sv.Asset}
		s.mu.Lock()
		if s.alerts[k] == nil {
			a := &alert{Alert: sv.Alert, notified: sv.Notified, openSince: sv.OpenSince, lastNotify: sv.LastNotify,
				clearSince: sv.ClearSince, underFire: sv.UnderFire, changes: slices.Clone(sv.Changes)}
			a.Fingerprint = Fingerprint(sv.RuleID, sv.Site, sv.Asset)
			a.Severity, a.Labels = r.Severity, alertLabels(r, sv.Site, sv.Asset)
			a.Silenced, a.InhibitedBy = false, ""
			s.add(k, a)
			if r.SiteDown && isOpen(a.State) && s.siteDown[sv.Site] == "" {
				s.siteDown[sv.Site] = a.Fingerprint
			}
			restored++
		}
		s.mu.Unlock()
	}
	return restored, skipped
}

// DropSites forgets everything the engine holds about the sites (their
// alerts, event times, inhibition), without a notification: another
// engine owns them now and restores their alerts from what was saved.
func (e *Engine) DropSites(sites []string) (dropped int) {
	by := map[*shard]map[string]bool{}
	for _, site := range sites {
		s := e.shardOf(site)
		if by[s] == nil {
			by[s] = map[string]bool{}
		}
		by[s][site] = true
	}
	for s, set := range by {
		s.mu.Lock()
		for k, a := range s.alerts {
			if set[k.site] {
				s.remove(k, a)
				dropped++
			}
		}
		for k := range s.assets {
			if set[k.site] {
				delete(s.assets, k)
			}
		}
		for k := range s.series {
			if set[k.site] {
				delete(s.series, k)
			}
		}
		for site := range set {
			delete(s.siteDown, site)
			delete(s.grace, site)
		}
		s.mu.Unlock()
	}
	return dropped
}
