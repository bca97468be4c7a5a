package progress

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/polis-platform/polis/rules/milestone"
	"github.com/polis-platform/polis/twin/lifecycle"
	"github.com/polis-platform/polis/twin/registry"
	"github.com/polis-platform/polis/twin/state"
)

// Live is the live twin as the portal reads it: an asset's status now, and
// a site's aggregates (coworking occupancy). Both answer false for what
// they do not hold.
type Live interface {
	AssetStatus(site, asset string, now time.Time) (state.Status, bool)
	SiteView(site string, now time.Time) (state.SiteView, bool)
}

// SiteEnergy is what a site's plants produced and its chargers delivered
// over a period, in kWh.
type SiteEnergy struct {
	PVkWh  float64
	EVCkWh float64
}

// MaxFeed bounds Snapshot.Feed.
const MaxFeed = 200

// liveSite is a site whose current states differ from what the history
// says: its counts since the build that first saw them.
type liveSite struct {
	sig     string
	contrib []int32
	since   int64 // Unix ms
}

// computer turns inputs into Snapshots. It keeps what one build leaves for
// the next (per-site counts of the states last seen); it is used by one
// goroutine at a time.
type computer struct {
	set       *measureSet
	targets   []targetDef
	facts     []milestone.Fact
	funding   []Funding
	comuni    map[string]registry.Comune
	deadline  time.Time
	eval      *evaluator
	live      map[string]*liveSite
	lastFold  *folded
	published []Published
	hours     map[*registry.OpeningHours]string // Italian opening hours, by registry entry
}

// buildInput is what one build reads.
type buildInput struct {
	now      time.Time
	sites    []*registry.Site
	state    func(site, asset string) (lifecycle.State, bool) // nil: the registry's states
	live     Live                                             // nil: nothing is known to be working
	hist     *folded                                          // nil: the history was not read yet
	energy   map[string]SiteEnergy                            // nil: not read yet
	energyAt time.Time
}

func newComputer(pack []*milestone.Milestone, facts []milestone.Fact, extra []Supplementary, extraFunding []Funding,
	comuni []registry.Comune, deadline time.Time) (*computer, error) {
	set, keys, err := newMeasureSet(pack)
	if err != nil {
		return nil, err
	}
	defs, err := targetDefs(pack, keys, set, facts, extra)
	if err != nil {
		return nil, err
	}
	c := &computer{set: set, targets: defs, facts: facts, funding: funding(facts, extraFunding),
		comuni: make(map[string]registry.Comune, len(comuni)), deadline: deadline,
		eval: newEvaluator(set), live: map[string]*liveSite{}, hours: map[*registry.OpeningHours]string{}}
	for _, cm := range comuni {
		c.comuni[cm.Code] = cm
	}
	for _, f := range facts {
		if f.Type != milestone.FactProgress || !f.HasValue {
			continue
		}
		p := Published{Fact: f.ID, Date: f.Date, Metric: f.Metric, Value: f.Value, Unit: f.Unit, Note: f.Note,
			Source: SourceRef{Fact: f.ID, URL: f.SourceURL, Publisher: f.SourceKind, Date: f.Date}, Twin: -1}
		if m, ok := publishedMeasures[f.ID]; ok {
			if _, ok := set.byKey[m]; !ok {
				return nil, fmt.Errorf("BUG: fact %s maps to unknown measure %q", f.ID, m)
			}
			p.Measure = m
		}
		c.published = append(c.published, p)
	}
	return c, nil
}

// areaAcc accumulates one area.
type areaAcc struct {
	a     *Area
	comp  []delta // completion changes of its post offices
	sites int
}

func (c *computer) build(in buildInput) *Snapshot {
	now := in.now
	nowMS := now.UnixMilli()
	snap := &Snapshot{At: now, Deadline: c.deadline, EnergyAt: in.energyAt}
	if in.hist != nil {
		snap.HistoryAt = in.hist.readAt
	}
	if in.hist != c.lastFold {
		// A new history: what it now has is no longer live-only.
		c.lastFold = in.hist
		for id, ls := range c.live {
			if hf := in.hist.site(id); hf != nil && hf.sig == ls.sig {
				delete(c.live, id)
			}
		}
	}

	n := len(c.set.list)
	totals := make([]int64, n)
	extra := make([][]delta, n) // live changes after the history
	areas := map[areaKey]*areaAcc{}
	italy := &areaAcc{a: newArea(AreaItaly, "IT", "Italia", "italia", "")}
	areas[areaKey{AreaItaly, "italia"}] = italy
	var (
		states  []lifecycle.State
		sig     []byte
		offices []*Office
		cowork  []*Office
		present = make(map[string]bool, len(in.sites))
	)
	for _, s := range in.sites {
		present[s.ID] = true
		states = states[:0]
		for _, a := range s.Assets {
			st := lifecycle.State("")
			if in.state != nil {
				st, _ = in.state(s.ID, a.ID)
			}
			if !st.Valid() {
				st = registryState(a)
			}
			states = append(states, st)
		}
		sig = signature(states, sig)
		hf := in.hist.site(s.ID)
		var contrib []int32
		var since int64 = -1 // the live change's time, when the states differ from the history's
		if hf != nil && hf.sig == string(sig) {
			contrib = hf.contrib
			delete(c.live, s.ID)
		} else {
			ls := c.live[s.ID]
			if ls == nil || ls.sig != string(sig) {
				ls = &liveSite{sig: string(sig), contrib: c.eval.eval(s, states), since: nowMS}
				c.live[s.ID] = ls
			}
			contrib, since = ls.contrib, ls.since
			if in.hist != nil {
				for i := range contrib {
					var h int32
					if hf != nil {
						h = hf.contrib[i]
					}
					if d := contrib[i] - h; d != 0 {
						extra[i] = append(extra[i], delta{since, d})
					}
				}
			}
		}
		for i, v := range contrib {
			totals[i] += int64(v)
		}

		o := c.office(s, states, hf, since, in, now)
		accs := c.areasOf(areas, s, o)
		for _, acc := range accs {
			acc.sites++
			acc.add(o)
		}
		if in.hist != nil && s.Kind == registry.KindPostOffice {
			comp := c.completionDeltas(hf, o.Completed, since)
			for _, acc := range accs {
				acc.comp = append(acc.comp, comp...)
			}
		}
		if s.Kind == registry.KindCoworking {
			cowork = append(cowork, o)
		} else {
			offices = append(offices, o)
		}
	}
	for id := range c.live {
		if !present[id] {
			delete(c.live, id) // the site left the registry
		}
	}

	var trendAt []time.Time
	if in.hist != nil {
		trendAt = monthEnds(trendStart(in.hist), now)
	}
	snap.Offices, snap.Coworking = offices, cowork
	snap.Italy = italy.a
	for k, acc := range areas {
		if in.hist != nil {
			acc.a.Trend = Series{Name: "Uffici postali con intervento concluso", Points: newSeries(acc.comp).points(trendAt)}
			if n := len(acc.a.Trend.Points); n > 0 {
				acc.a.Trend.Points[n-1].Value = float64(acc.a.OfficesCompleted) // now: the live count
			}
		}
		switch k.kind {
		case AreaRegion:
			snap.Regions = append(snap.Regions, acc.a)
		case AreaProvince:
			snap.Provinces = append(snap.Provinces, acc.a)
		case AreaComune:
			snap.Comuni = append(snap.Comuni, acc.a)
		}
	}
	byName := func(a, b *Area) int { return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.Code, b.Code)) }
	slices.SortFunc(snap.Regions, byName)
	slices.SortFunc(snap.Provinces, byName)
	slices.SortFunc(snap.Comuni, byName)

	// Each measure over time: the history's changes, then the live ones.
	ser := make([]series, n)
	if in.hist != nil {
		for i := range ser {
			ser[i] = in.hist.series[i].with(extra[i])
		}
	}
	snap.Targets = make([]Target, 0, len(c.targets))
	for _, d := range c.targets {
		cur := int(totals[d.Measure])
		st, pct, exp := status(cur, d.Target, d.Start, d.Deadline, now)
		t := Target{ID: d.ID, Title: d.Title, Line: d.Line, Measure: c.set.list[d.Measure].Key, Target: d.Target,
			Deadline: d.Deadline, Source: d.Source, Current: cur, Expected: exp, Percent: pct, Status: st,
			Method: d.Method, Note: d.Note}
		if in.hist != nil {
			s := ser[d.Measure]
			t.ReachedOn = s.reachedOn()
			if cur >= d.Target {
				t.AchievedOn = s.firstReach(int64(d.Target))
			}
			t.Pace = s.pace(now)
			t.Projected = projected(cur, d.Target, t.Pace, now)
			t.Trend = Series{Name: c.set.list[d.Measure].Name, Points: s.points(trendAt)}
		}
		snap.Targets = append(snap.Targets, t)
	}
	disagreements(snap.Targets, c.deadline)

	snap.Published = slices.Clone(c.published)
	for i := range snap.Published {
		p := &snap.Published[i]
		if p.Measure == "" || in.hist == nil {
			continue
		}
		p.Twin = int(ser[c.set.byKey[p.Measure]].value(endOfDay(p.Date).UnixMilli()))
	}
	snap.Funding = slices.Clone(c.funding)
	for i := range snap.Funding {
		snap.Funding[i].Disagrees = slices.Clone(snap.Funding[i].Disagrees)
	}
	snap.Suppliers = suppliers(in.sites)
	snap.Feed = feed(snap)
	snap.Index()
	return snap
}

// site is what the history says of a site; nil without history or for a
// site it does not know.
func (f *folded) site(id string) *siteFold {
	if f == nil {
		return nil
	}
	return f.sites[id]
}

// trendStart is where trends start: the start of works, or the first
// recorded change if earlier.
func trendStart(f *folded) time.Time {
	start := milestone.DefaultStart
	for _, s := range f.series {
		if fc := s.firstChange(); fc != 0 && time.UnixMilli(fc).Before(start) {
			start = time.UnixMilli(fc)
		}
	}
	return start
}

// with adds changes to a series, sharing nothing with s.
func (s series) with(extra []delta) series {
	if len(extra) == 0 {
		return s
	}
	ds := make([]delta, 0, len(s.at)+len(extra))
	var prev int64
	for i, at := range s.at {
		ds = append(ds, delta{at, int32(s.sum[i] - prev)})
		prev = s.sum[i]
	}
	return newSeries(append(ds, extra...))
}

// completionDeltas are a post office's completion changes: the history's,
// and a live one if its completion now differs from the history's.
func (c *computer) completionDeltas(hf *siteFold, done bool, since int64) []delta {
	var out []delta
	was := false
	if hf != nil {
		out = hf.compDeltas
		was = hf.completed
	}
	if since >= 0 && done != was {
		d := int32(1)
		if !done {
			d = -1
		}
		out = append(slices.Clip(out), delta{since, d})
	}
	return out
}

func newArea(kind AreaKind, code, name, slug, parent string) *Area {
	return &Area{Kind: kind, Code: code, Name: name, Slug: slug, Parent: parent, ByType: map[string]Counts{}}
}

// areasOf returns the accumulators of Italy and of the site's region,
// province and comune (those it has), creating them.
func (c *computer) areasOf(areas map[areaKey]*areaAcc, s *registry.Site, o *Office) []*areaAcc {
	out := []*areaAcc{areas[areaKey{AreaItaly, "italia"}]}
	get := func(k areaKey, mk func() *Area) {
		acc := areas[k]
		if acc == nil {
			acc = &areaAcc{a: mk()}
			areas[k] = acc
		}
		out = append(out, acc)
	}
	if o.RegionSlug != "" {
		get(areaKey{AreaRegion, o.RegionSlug}, func() *Area {
			return newArea(AreaRegion, RegionCode(o.Region), o.Region, o.RegionSlug, "")
		})
	}
	ps := Slug(o.Province)
	if ps != "" {
		get(areaKey{AreaProvince, ps}, func() *Area {
			name := o.ProvinceName
			if name == "" {
				name = o.Province
			}
			return newArea(AreaProvince, ProvinceCode(o.Comune), name, ps, o.RegionSlug)
		})
	}
	if o.Comune != "" {
		get(areaKey{AreaComune, o.Comune}, func() *Area {
			name := o.ComuneName
			if name == "" {
				name = o.Comune
			}
			return newArea(AreaComune, o.Comune, name, Slug(name), ps)
		})
	}
	return out
}

// add counts an office into an area.
func (acc *areaAcc) add(o *Office) {
	a := acc.a
	if o.Kind == string(registry.KindCoworking) {
		a.Coworking++
		if o.Completed {
			a.CoworkingCompleted++
		}
	} else {
		a.Offices++
		if o.Completed {
			a.OfficesCompleted++
		}
		if o.Operational {
			a.OfficesOperational++
		}
	}
	for i := range o.Assets {
		as := &o.Assets[i]
		cn := a.ByType[as.Type]
		addLevel(&cn, as.Lifecycle, as.WorkingNow)
		a.ByType[as.Type] = cn
	}
}

// addLevel counts one asset in state s (levels are cumulative, see Level).
func addLevel(c *Counts, s lifecycle.State, working bool) {
	if s == lifecycle.Decommissioned || !s.Valid() {
		return
	}
	c.Planned++
	if atLeastInstalled(s) {
		c.Installed++
	}
	if atLeastCommissioned(s) {
		c.Commissioned++
	}
	switch s {
	case lifecycle.Operational:
		c.Operational++
		if working {
			c.WorkingNow++
		}
	case lifecycle.Faulty:
		c.Faulty++
	}
}

// office makes the public view of a site.
func (c *computer) office(s *registry.Site, states []lifecycle.State, hf *siteFold, since int64, in buildInput, now time.Time) *Office {
	o := &Office{Site: s.ID, Kind: string(s.Kind), Comune: s.Comune, ComuneName: s.Name, Province: s.Province,
		ProvinceName: s.ProvinceName, Region: s.Region, RegionSlug: Slug(s.Region), Population: s.Population,
		InnerArea: s.InnerArea, Lat: s.Lat, Lon: s.Lon, Address: s.Address, OpeningHours: c.openingHours(s.OpeningHours),
		CUP: s.CUP, CIG: s.CIG, PVkWhMonth: -1, EVCkWhMonth: -1}
	if cm, ok := c.comuni[s.Comune]; ok {
		if o.ComuneName == "" {
			o.ComuneName = cm.Name
		}
		if o.Province == "" {
			o.Province = cm.ProvinceCode
		}
		if o.ProvinceName == "" {
			o.ProvinceName = cm.Province
		}
		if o.Region == "" {
			o.Region, o.RegionSlug = cm.Region, Slug(cm.Region)
		}
	}
	if s.Coworking != nil {
		o.Workstations, o.MeetingRooms = s.Coworking.Workstations, s.Coworking.MeetingRooms
	}
	o.Completed = completed(states)
	if in.hist != nil {
		switch {
		case since >= 0 && o.Completed && (hf == nil || !hf.completed):
			o.CompletedOn = msTime(since) // completed after the history was read
		case o.Completed && hf != nil && hf.completed:
			o.CompletedOn = msTime(hf.completedAt)
		}
	}
	o.Operational = len(states) > 0
	o.Assets = make([]Asset, len(s.Assets))
	for i, a := range s.Assets {
		st := states[i]
		if st != lifecycle.Operational {
			o.Operational = false
		}
		as := Asset{ID: a.ID, Type: a.Type, TypeName: TypeName(a.Type), Lifecycle: st, Supplier: a.Supplier, CIG: a.CIG}
		if as.CIG == "" {
			as.CIG = s.CIG
		}
		switch {
		case hf != nil && i < len(hf.installedOn) && hf.installedOn[i] > 0:
			as.InstalledOn = msTime(hf.installedOn[i])
		case atLeastInstalled(st) && !a.InstalledAt.IsZero():
			as.InstalledOn = a.InstalledAt.UTC()
		}
		if in.live != nil {
			if status, ok := in.live.AssetStatus(s.ID, a.ID, now); ok {
				as.Status = status.String()
				as.Online = status == state.StatusOnline
				as.WorkingNow = as.Online && st == lifecycle.Operational
			}
		}
		o.Assets[i] = as
	}
	if in.live != nil && s.Kind == registry.KindCoworking {
		if v, ok := in.live.SiteView(s.ID, now); ok {
			o.FreeWorkstations = max(v.Desks-v.DesksOccupied, 0)
			o.FreeRooms = max(v.Rooms-v.RoomsOccupied, 0)
		}
	}
	if in.energy != nil {
		e := in.energy[s.ID]
		o.PVkWhMonth, o.EVCkWhMonth = e.PVkWh, e.EVCkWh
	}
	return o
}

// openingHours writes h in Italian, once per registry entry (registry
// entries are replaced, not changed, when a site is updated).
func (c *computer) openingHours(h *registry.OpeningHours) string {
	if h == nil {
		return ""
	}
	s, ok := c.hours[h]
	if !ok {
		if len(c.hours) > 100_000 {
			clear(c.hours) // entries of sites long gone
		}
		s = openingHoursIT(h)
		c.hours[h] = s
	}
	return s
}

// suppliers groups the registry's assets by supplier, by name.
func suppliers(sites []*registry.Site) []Supplier {
	type acc struct {
		s     *Supplier
		sites map[string]bool
		cigs  map[string]bool
		types map[string]bool
	}
	by := map[string]*acc{}
	for _, s := range sites {
		for _, a := range s.Assets {
			if a.Supplier == "" {
				continue
			}
			x := by[a.Supplier]
			if x == nil {
				x = &acc{s: &Supplier{Name: a.Supplier, ByType: map[string]int{}}, sites: map[string]bool{},
					cigs: map[string]bool{}, types: map[string]bool{}}
				by[a.Supplier] = x
			}
			x.s.Assets++
			x.s.ByType[a.Type]++
			x.sites[s.ID] = true
			x.types[a.Type] = true
			cig := a.CIG
			if cig == "" {
				cig = s.CIG
			}
			if cig != "" {
				x.cigs[cig] = true
			}
		}
	}
	out := make([]Supplier, 0, len(by))
	for _, x := range by {
		x.s.Sites = len(x.sites)
		for t := range x.types {
			x.s.Types = append(x.s.Types, t)
		}
		slices.SortFunc(x.s.Types, typeOrder)
		for cg := range x.cigs {
			x.s.CIGs = append(x.s.CIGs, cg)
		}
		slices.Sort(x.s.CIGs)
		out = append(out, *x.s)
	}
	slices.SortFunc(out, func(a, b Supplier) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// typeOrder sorts asset types as TypeOrder lists them, unknown ones last
// by name.
func typeOrder(a, b string) int {
	ia, ib := slices.Index(TypeOrder, a), slices.Index(TypeOrder, b)
	if ia < 0 {
		ia = len(TypeOrder)
	}
	if ib < 0 {
		ib = len(TypeOrder)
	}
	return cmp.Or(cmp.Compare(ia, ib), strings.Compare(a, b))
}

// feed lists the targets achieved and the offices and coworking spaces
// completed, newest first, at most MaxFeed.
func feed(s *Snapshot) []FeedEntry {
	var out []FeedEntry
	for _, t := range s.Targets {
		if t.AchievedOn.IsZero() {
			continue
		}
		out = append(out, FeedEntry{ID: "target/" + t.ID, Title: "Obiettivo raggiunto: " + t.Title,
			Summary: fmt.Sprintf("Il gemello digitale conta %s su un obiettivo di %s (%s).",
				formatInt(t.Current), formatInt(t.Target), sourceLabel(t.Source)),
			Link: "/obiettivi#" + t.ID, At: t.AchievedOn})
	}
	add := func(o *Office, what, of string) {
		if o.CompletedOn.IsZero() {
			return
		}
		where := o.ComuneName
		if o.Province != "" {
			where += " (" + o.Province + ")"
		}
		out = append(out, FeedEntry{ID: "office/" + o.Site, Title: "Intervento concluso: " + what + " di " + where,
			Summary: fmt.Sprintf("Tutti i %d apparati %s %s sono collaudati o in servizio.", len(o.Assets), of, o.Site),
			Link:    "/uffici/" + o.Site, At: o.CompletedOn})
	}
	for _, o := range s.Offices {
		add(o, "ufficio postale", "dell'ufficio postale")
	}
	for _, o := range s.Coworking {
		add(o, "spazio di coworking", "dello spazio di coworking")
	}
	slices.SortFunc(out, func(a, b FeedEntry) int { return cmp.Or(b.At.Compare(a.At), strings.Compare(a.ID, b.ID)) })
	if len(out) > MaxFeed {
		out = slices.Clip(out[:MaxFeed])
	}
	return out
}

func sourceLabel(s SourceRef) string {
	switch {
	case s.Fact != "" && s.Publisher != "":
		return "fonte " + s.Fact + ", " + s.Publisher
	case s.Fact != "":
		return "fonte " + s.Fact
	case s.Publisher != "":
		return "fonte: " + s.Publisher
	}
	return "fonte non indicata"
}

// formatInt writes n with Italian thousands separators (4.800).
func formatInt(n int) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte('.')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
