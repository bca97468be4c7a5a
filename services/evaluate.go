package services

import (
	"slices"
	"time"

	"github.com/polis-platform/polis/twin/lifecycle"
	"github.com/polis-platform/polis/twin/registry"
	"github.com/polis-platform/polis/twin/state"
)

// Twin is the live twin as the finder reads it; *twin.Live implements it.
type Twin interface {
	// AssetState is the asset's live state at now. local is false when
	// another instance holds the site (v is then empty; owner is that
	// instance's URL, "" if unknown).
	AssetState(site, asset string, now time.Time) (v state.AssetView, local bool, owner string)
	// Lifecycle is the asset's current lifecycle state (every instance
	// follows the whole lifecycle log); ok is false for an unknown asset.
	Lifecycle(site, asset string) (lifecycle.State, bool)
}

// assetCodes are the reason codes of one asset type.
type assetCodes struct {
	none, notInService, offline, faulty string
}

var codesOf = map[string]assetCodes{
	registry.TypeTotem:  {ReasonNoTotem, ReasonTotemNotInService, ReasonTotemOffline, ReasonTotemFaulty},
	registry.TypeATM:    {ReasonNoATM, ReasonATMNotInService, ReasonATMOffline, ReasonATMOutOfService},
	registry.TypeLocker: {ReasonNoLocker, ReasonLockerNotInService, ReasonLockerOffline, ReasonLockerFaulty},
	registry.TypeEVC:    {ReasonNoCharger, ReasonChargerNotInService, ReasonChargerOffline, ReasonChargerFaulty},
	// Coworking answers "is a desk free"; a desk that is not in service,
	// offline or faulty is not free (see deskReason).
	registry.TypeDesk: {ReasonNoFreeDesk, ReasonNoFreeDesk, ReasonNoFreeDesk, ReasonNoFreeDesk},
	registry.TypeRoom: {ReasonNoFreeRoom, ReasonNoFreeRoom, ReasonNoFreeRoom, ReasonNoFreeRoom},
}

// skip marks an asset that does not count (decommissioned).
const skip = "-"

// assetState is what the finder read of one asset in one evaluation.
type assetState struct {
	lc    lifecycle.State
	view  state.AssetView // read only for operational and faulty assets
	local bool
}

// officeEval evaluates the services of one site at one instant. It reads
// each asset and the opening hours at most once, however many services
// need them.
type officeEval struct {
	twin   Twin
	e      *siteEntry
	now    time.Time
	hours  *HoursState
	assets []assetMemo // a site has tens of assets at most: a slice beats a map
}

type assetMemo struct {
	a *registry.Asset
	s assetState
}

func newOfficeEval(t Twin, e *siteEntry, now time.Time) *officeEval {
	return &officeEval{twin: t, e: e, now: now}
}

func (o *officeEval) hoursState() HoursState {
	if o.hours == nil {
		h := Hours(o.e.site, o.now)
		o.hours = &h
	}
	return *o.hours
}

// asset reads an asset's lifecycle and, when it may serve, its live
// state. The lifecycle is read first: an asset not yet in service needs no
// copy of its live state. The result is valid until the next call.
func (o *officeEval) asset(a *registry.Asset) *assetState {
	for i := range o.assets {
		if o.assets[i].a == a {
			return &o.assets[i].s
		}
	}
	o.assets = append(o.assets, assetMemo{a: a})
	s := &o.assets[len(o.assets)-1].s
	lc, ok := o.twin.Lifecycle(o.e.site.ID, a.ID)
	if !ok {
		lc = a.Lifecycle
	}
	if lc == "" {
		lc = lifecycle.Planned // as the twin seeds an asset without a recorded state
	}
	s.lc = lc
	if lc == lifecycle.Operational || lc == lifecycle.Faulty {
		s.view, s.local, _ = o.twin.AssetState(o.e.site.ID, a.ID, o.now)
	}
	return s
}

// metric returns a metric's latest value.
func metric(v *state.AssetView, name string) (float64, bool) {
	m, ok := v.Metrics[name]
	return m.Value, ok
}

// assetReason is why one asset cannot serve svc now ("" if it can, skip
// if it does not count).
func assetReason(typ string, s *assetState, svc *Service) string {
	c := codesOf[typ]
	switch s.lc {
	case lifecycle.Decommissioned:
		return skip
	case lifecycle.Planned, lifecycle.Installed, lifecycle.Commissioned:
		return c.notInService
	}
	if !s.local {
		return ReasonElsewhere
	}
	v := &s.view
	switch v.Status {
	case state.StatusUnknown:
		return ReasonTwinUnknown
	case state.StatusOffline, state.StatusStale:
		return c.offline
	}
	switch typ {
	case registry.TypeTotem:
		if x, ok := metric(v, "online"); ok && x == 0 {
			return c.offline
		}
		if x, ok := metric(v, "paper_pct"); ok && x < MinPaperPct {
			return ReasonTotemNoPaper
		}
	case registry.TypeATM:
		// Before available: the simulator's ATMs report available=0 when
		// empty, and "no cash" says more than "out of service".
		if x, ok := metric(v, "cash_eur"); ok && x < MinCashEUR {
			return ReasonATMNoCash
		}
		if x, ok := metric(v, "available"); ok && x == 0 {
			return c.faulty
		}
	case registry.TypeLocker:
		if svc.NeedsFreeCompartment {
			x, ok := metric(v, "free_count")
			if !ok {
				return ReasonTwinUnknown
			}
			if x < 1 {
				return ReasonLockerFull
			}
		}
	case registry.TypeEVC:
		x, ok := metric(v, "connector_state")
		switch {
		case !ok:
			return ReasonTwinUnknown
		case x == 3:
			return c.faulty
		case x != 0:
			return ReasonChargerBusy
		}
	case registry.TypeDesk, registry.TypeRoom:
		x, ok := metric(v, "occupied")
		switch {
		case !ok:
			return ReasonTwinUnknown
		case x != 0:
			return c.none // occupied: not free
		}
	}
	if v.Status == state.StatusFault || s.lc == lifecycle.Faulty {
		return c.faulty
	}
	return ""
}

// assetsReason is the best answer among the site's assets of a type: ""
// when one can serve, else the problem of the asset closest to serving;
// free counts those that can serve.
func (o *officeEval) assetsReason(typ string, svc *Service) (reason string, free, total int, known bool) {
	best := codesOf[typ].none
	bestRank := 1 << 30
	known = true
	for _, a := range o.e.assets[typ] {
		s := o.asset(a)
		r := assetReason(typ, s, svc)
		if r == skip {
			continue
		}
		total++
		if r == ReasonElsewhere {
			known = false
		}
		if r == "" {
			free++
		}
		rank, ok := reasonRank[r]
		if !ok { // the coworking codes that stand for several states
			rank = 1
		}
		if rank < bestRank {
			best, bestRank = r, rank
		}
	}
	return best, free, total, known
}

// channel answers one channel of a service.
func (o *officeEval) channel(svc *Service, ch Channel) ChannelAvailability {
	out := ChannelAvailability{Channel: ch}
	hoursBound := ch == ChannelCounter || ch == ChannelCoworking
	if hoursBound {
		if h := o.hoursState(); !h.Open {
			out.Reason, out.ExpectedAt = h.Reason, h.NextOpening
			out.Message = reasonMessage(h.Reason, h.Holiday, h.NextOpening)
			return out
		}
	}
	var reason string
	switch ch {
	case ChannelCounter:
		// Open, and nothing else is needed.
	case ChannelCoworking:
		typ := registry.TypeDesk
		if slices.Contains(svc.Needs, registry.TypeRoom) {
			typ = registry.TypeRoom
		}
		reason, _, _, _ = o.assetsReason(typ, svc)
	default:
		reason, _, _, _ = o.assetsReason(channelAsset[ch], svc)
	}
	if reason != "" {
		out.Reason, out.Message = reason, reasonMessage(reason, "", time.Time{})
		return out
	}
	out.Available = true
	return out
}

// availability answers a service at the site: available if any channel
// serves it now; otherwise the first channel's problem (channels are in
// order of preference) with the earliest expected return of any channel.
func (o *officeEval) availability(svc *Service) Availability {
	av := Availability{Service: svc.ID, Name: svc.Name, Channels: make([]ChannelAvailability, 0, len(svc.Channels))}
	for _, ch := range svc.Channels {
		av.Channels = append(av.Channels, o.channel(svc, ch))
	}
	for _, c := range av.Channels {
		if c.Available {
			av.Available, av.Channel = true, c.Channel
			return av
		}
	}
	first := av.Channels[0]
	av.Channel, av.Reason, av.Message, av.ExpectedAt = first.Channel, first.Reason, first.Message, first.ExpectedAt
	for _, c := range av.Channels[1:] {
		if !c.ExpectedAt.IsZero() && (av.ExpectedAt.IsZero() || c.ExpectedAt.Before(av.ExpectedAt)) {
			av.ExpectedAt = c.ExpectedAt
			av.Message = first.Message + "; " + channelNames[c.Channel] + " da " + quando(c.ExpectedAt)
		}
	}
	return av
}
