package engine

import (
	"sort"
	"time"
)

// forget drops an alert that has ended its life (retention, a removed
// rule); TakeForgotten reports it, so that its saved state is deleted too.
func (s *shard) forget(k alertKey, a *alert) {
	s.forgotten = append(s.forgotten, Forgotten{Fingerprint: a.Fingerprint, Site: a.Site, Rev: s.e.rev.Add(1)})
	s.remove(k, a)
}

// remove takes an alert out of the shard's maps.
func (s *shard) remove(k alertKey, a *alert) {
	delete(s.alerts, k)
	delete(s.byFP, a.Fingerprint)
	ak := assetKey{k.site, k.asset}
	if byRule := s.perAsset[ak]; byRule != nil {
		delete(byRule, k.rule)
		if len(byRule) == 0 {
			delete(s.perAsset, ak)
		}
	}
}

// add puts a new alert in the shard's maps and returns its asset's alerts.
func (s *shard) add(k alertKey, a *alert) map[string]*alert {
	s.alerts[k] = a
	s.byFP[a.Fingerprint] = a
	ak := assetKey{k.site, k.asset}
	byRule := s.perAsset[ak]
	if byRule == nil {
		byRule = map[string]*alert{}
		s.perAsset[ak] = byRule
	}
	byRule[k.rule] = a
	return byRule
}

func (s *shard) emit(out *[]Notification, a *alert, k Kind, t time.Time, deliver bool) {
	*out = append(*out, Notification{Kind: k, At: t, Alert: a.Alert, Level: a.Level, Deliver: deliver})
	if !a.dirty {
		a.dirty = true
		s.dirty = append(s.dirty, a)
	}
	if deliver {
		a.lastNotify = t
	}
}

// step applies one evaluation to one alert.
func (s *shard) step(x result, a *alert, ev Eval, out *[]Notification) {
	r, t := x.r, ev.TS
	if a.State == StateNoData {
		s.close(r, a, t, out) // data is back
	}
	s.updateFlags(r, a, t)
	switch a.State {
	case StateInactive, StateResolved:
		if !x.cond {
			return
		}
		s.open(a, t)
		s.updateFlags(r, a, t) // link to a site already down
		if r.Summary != nil {
			a.Summary = r.Summary(ev)
		}
		if r.For <= 0 {
			s.fire(r, a, t, out)
		} else {
			a.State = StatePending
			s.emit(out, a, KindPending, t, false)
		}
	case StatePending:
		if !x.cond {
			a.State = StateInactive
			s.emit(out, a, KindInactive, t, false)
			return
		}
		if r.Summary != nil {
			a.Summary = r.Summary(ev)
		}
		if t.Sub(a.ActiveAt) >= r.For {
			s.fire(r, a, t, out)
		}
	case StateFiring:
		if r.Summary != nil && x.cond {
			a.Summary = r.Summary(ev)
		}
		if x.cond || !x.clears {
			a.clearSince = time.Time{}
			if x.cond && !a.underFire {
				a.underFire = true // re-fires under flap damping
				s.recordChange(a, t, out)
			}
			break
		}
		if a.clearSince.IsZero() {
			a.clearSince = t
		}
		if t.Sub(a.clearSince) >= r.KeepFiringFor {
			s.resolve(r, a, t, out)
		}
	}
	s.unflap(r, a, t, out)
	s.flush(a, t, out)
}

// open starts a new occurrence.
func (s *shard) open(a *alert, t time.Time) {
	a.Occurrence++
	a.ActiveAt, a.FiredAt, a.ResolvedAt = t, time.Time{}, time.Time{}
	a.Ack, a.Level, a.notified = nil, 0, false
	a.clearSince = time.Time{}
}

func (s *shard) fire(r *Rule, a *alert, t time.Time, out *[]Notification) {
	a.State = StateFiring
	a.FiredAt = a.ActiveAt.Add(r.For)
	a.clearSince = time.Time{}
	a.underFire = true
	s.recordChange(a, t, out)
	if r.SiteDown {
		s.siteWentDown(a)
	} else {
		a.InhibitedBy = s.inhibitor(a.Site, t)
	}
	d := s.canDeliver(a)
	s.emit(out, a, KindFired, t, d)
	s.markNotified(a, t, d)
}

func (s *shard) markNotified(a *alert, t time.Time, d bool) {
	if d && !a.notified {
		a.notified, a.openSince = true, t
	}
}

// resolve ends a firing alert, unless flap damping holds it.
func (s *shard) resolve(r *Rule, a *alert, t time.Time, out *[]Notification) {
	if a.underFire {
		a.underFire = false
		s.recordChange(a, t, out)
	}
	if a.Flapping {
		return
	}
	s.close(r, a, t, out)
}

// close moves an open alert to resolved; "resolved" is delivered iff the
// opening was.
func (s *shard) close(r *Rule, a *alert, t time.Time, out *[]Notification) {
	a.State = StateResolved
	a.ResolvedAt = t
	a.clearSince = time.Time{}
	a.underFire, a.Flapping = false, false // changes stay: they measure flapping
	s.emit(out, a, KindResolved, t, a.notified)
	a.notified = false
	a.InhibitedBy = ""
	if r.SiteDown {
		s.siteCameBack(a, t, out)
	}
}

// recordChange counts a change of the underlying state for flap detection.
func (s *shard) recordChange(a *alert, t time.Time, out *[]Notification) {
	if s.e.opts.FlapThreshold <= 0 {
		return
	}
	a.changes = append(a.changes, t)
	a.changes = prune(a.changes, t.Add(-s.e.opts.FlapWindow))
	if !a.Flapping && len(a.changes) >= s.e.opts.FlapThreshold {
		a.Flapping = true
		s.emit(out, a, KindFlapping, t, false)
	}
}

// unflap ends damping once the changes in the window drop below the
// threshold, resolving if the condition is clear by then.
func (s *shard) unflap(r *Rule, a *alert, t time.Time, out *[]Notification) {
	if !a.Flapping {
		return
	}
	a.changes = prune(a.changes, t.Add(-s.e.opts.FlapWindow))
	if len(a.changes) >= s.e.opts.FlapThreshold {
		return
	}
	a.Flapping = false
	if !a.underFire && a.State == StateFiring {
		s.close(r, a, t, out)
	}
}

func (s *shard) canDeliver(a *alert) bool { return !a.Silenced && a.InhibitedBy == "" }

// updateFlags recomputes silence and inhibition at t.
func (s *shard) updateFlags(r *Rule, a *alert, t time.Time) {
	a.Silenced = s.silencedAt(a, t)
	if !r.SiteDown && a.State != StateInactive && a.State != StateResolved {
		a.InhibitedBy = s.inhibitor(a.Site, t)
	}
}

// flush delivers an opening held back by a silence or an inhibition that
// has since ended, if the alert is still open.
func (s *shard) flush(a *alert, t time.Time, out *[]Notification) {
	if !isOpen(a.State) || a.notified || !s.canDeliver(a) {
		return
	}
	k := KindFired
	if a.State == StateNoData {
		k = KindNoData
	}
	s.emit(out, a, k, t, true)
	s.markNotified(a, t, true)
}

// siteWentDown links the site's open alerts to a, the site-down alert.
func (s *shard) siteWentDown(a *alert) {
	if s.siteDown[a.Site] != "" {
		return
	}
	s.siteDown[a.Site] = a.Fingerprint
	rules := s.e.rules.Load().byID
	for _, b := range s.alerts {
		if b.Site == a.Site && b.State != StateInactive && b.State != StateResolved && !isSiteDown(rules, b.RuleID) {
			b.InhibitedBy = a.Fingerprint
		}
	}
}

// siteCameBack relinks the site's alerts to another site-down alert if one
// is open, or releases them.
func (s *shard) siteCameBack(a *alert, t time.Time, out *[]Notification) {
	if s.siteDown[a.Site] != a.Fingerprint {
		return
	}
	delete(s.siteDown, a.Site)
	rules := s.e.rules.Load().byID
	for _, b := range s.alerts {
		if b != a && b.Site == a.Site && isOpen(b.State) && isSiteDown(rules, b.RuleID) {
			s.siteDown[a.Site] = b.Fingerprint
			break
		}
	}
	if s.siteDown[a.Site] == "" && s.e.opts.InhibitGrace > 0 {
		s.grace[a.Site] = grace{a.Fingerprint, t.Add(s.e.opts.InhibitGrace)}
		return // released by updateFlags and flush once the grace is over
	}
	var released []*alert
	for _, b := range s.alerts {
		if b.InhibitedBy == a.Fingerprint {
			b.InhibitedBy = s.siteDown[a.Site]
			released = append(released, b)
		}
	}
	sort.Slice(released, func(i, j int) bool { return released[i].Fingerprint < released[j].Fingerprint })
	for _, b := range released {
		s.flush(b, t, out)
	}
}

// tickAlert applies the passing of time to one alert.
func (s *shard) tickAlert(r *Rule, a *alert, now time.Time, out *[]Notification) {
	s.updateFlags(r, a, now)
	if r.NoDataAfter > 0 && a.State != StateNoData {
		// An asset never heard from (only timer evaluations) has no silence to measure.
		last, seen := s.assets[assetKey{a.Site, a.Asset}]
		if seen && now.Sub(last) >= r.NoDataAfter {
			s.noData(r, a, last.Add(r.NoDataAfter), now, out)
		}
	}
	switch a.State {
	case StatePending:
		if now.Sub(a.ActiveAt) >= r.For {
			s.fire(r, a, now, out)
		}
	case StateFiring:
		if !a.clearSince.IsZero() && now.Sub(a.clearSince) >= r.KeepFiringFor {
			s.resolve(r, a, now, out)
		}
	case StateResolved, StateInactive:
		// NoData rules keep the record: it is how a silent asset is noticed.
		// ResolvedAt and ActiveAt, not LastEval: evaluations go on while
		// nothing happens.
		since := a.ResolvedAt
		if a.State == StateInactive {
			since = a.ActiveAt
		}
		if now.Sub(since) >= s.e.opts.Retention && r.NoDataAfter == 0 {
			s.forget(alertKey{a.RuleID, a.Site, a.Asset}, a)
			return
		}
	}
	s.unflap(r, a, now, out)
	s.flush(a, now, out)
	if !isOpen(a.State) || !a.notified || a.Ack != nil || !s.canDeliver(a) {
		return
	}
	if s.e.opts.EscalateAfter > 0 && now.Sub(a.openSince) >= time.Duration(a.Level+1)*s.e.opts.EscalateAfter {
		a.Level++
		s.emit(out, a, KindEscalated, now, true)
	} else if s.e.opts.ReminderEvery > 0 && now.Sub(a.lastNotify) >= s.e.opts.ReminderEvery {
		s.emit(out, a, KindReminder, now, true)
	}
}

// noData moves an alert to NoData; since is when the silence passed the limit.
func (s *shard) noData(r *Rule, a *alert, since, now time.Time, out *[]Notification) {
	if !isOpen(a.State) && a.State != StatePending {
		s.open(a, since)
	}
	a.State = StateNoData
	a.clearSince = time.Time{}
	a.underFire, a.Flapping, a.changes = false, false, a.changes[:0]
	if r.SiteDown {
		s.siteWentDown(a)
	} else {
		a.InhibitedBy = s.inhibitor(a.Site, now)
	}
	d := s.canDeliver(a)
	s.emit(out, a, KindNoData, now, d)
	s.markNotified(a, now, d)
}

func (s *shard) silencedAt(a *alert, t time.Time) bool {
	for _, sl := range *s.e.silences.Load() {
		if t.Before(sl.Start) || !t.Before(sl.End) {
			continue
		}
		ok := true
		for i, m := range sl.Matchers {
			v := a.Labels[m.Label]
			if re := sl.res[i]; re != nil {
				ok = re.MatchString(v)
			} else {
				ok = v == m.Value
			}
			if !ok {
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// isSiteDown is nil-safe: an alert may outlive its rule until the next Tick.
func isSiteDown(rules map[string]*Rule, id string) bool {
	r := rules[id]
	return r != nil && r.SiteDown
}

// inhibitor is the fingerprint of the alert holding back the site's alerts
// at t, if any.
func (s *shard) inhibitor(site string, t time.Time) string {
	if fp := s.siteDown[site]; fp != "" {
		return fp
	}
	g, ok := s.grace[site]
	if !ok {
		return ""
	}
	if t.Before(g.until) {
		return g.fp
	}
	delete(s.grace, site)
	return ""
}
