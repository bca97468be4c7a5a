package registry

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/polis-platform/polis/twin/lifecycle"
)

// A rollout is the lifecycle history a demo fleet would have by now: for
// every asset, events planned → installed → commissioned → operational (a
// few → faulty and back, a few faulty now), dated from the start of works
// to now and shaped by the programme's published progress. It is what
// `polis registry generate` writes beside the registry and `polis dev`
// imports through the lifecycle log, as an operator would import a real
// fleet's history.
//
// The shape. The published figures (RolloutFact, from the public facts
// table) give the cumulative number of offices completed at a few dates;
// between them the curve is linear, before the first it starts from zero
// at the start of works, and after the last it goes on at the last pace
// but slowing, as a programme's last mile does: c(t) = c_last + R(1 -
// exp(-(t - t_last)/τ)) with R what remains of the reference fleet and
// τ = max(R / last pace, one year), so some offices are still in works or
// not started at the end. A fleet of N offices gets N/ReferenceOffices of
// every figure (a fleet of 4,800 gets the published numbers). The k-th
// office to complete does so when the scaled curve reaches k - 1/2, so the
// offices completed at any date are the curve rounded.
//
// Which office is k-th: the prototypes and first offices the facts name
// (F12, F24, F25) when the fleet has their comuni, then the others region by
// region with noise (each region gets a phase, each office its region's
// phase plus a uniform draw). An office is completed when its last asset is
// commissioned (the milestones' "intervento concluso": every device
// commissioned or later); its assets are installed over a few weeks before,
// in working hours, each commissioned after an acceptance period of 3 to
// 15 days and in service within a few days after that. Assets in service
// have faults (at most one each, some 12% a year) that take 1 to 45 days to
// repair: about 0.8% of them are faulty at any date, now included. Coworking spaces follow their own curve
// the same way. Nothing is dated before the start of works or after Now.
//
// The figures it cannot follow: Poste's device counts of 2024-11-30 (F31-F37:
// 845 kiosks, 733 ATMs, 722 showcases, 354 sites with chargers, 264 PV
// plants, 102 environment monitors, 20 lockers) count devices installed in a
// second phase, apart from the 2,548 offices completed then (F30); in this
// fleet every office has a totem, a showcase, a locker and an environment
// sensor, so 2,548 completed offices are at least 2,548 of each. The twin
// shows that difference rather than hiding it. F27 (800 offices on
// 2024-03-31) counts something else again (its note says so) and is not an
// anchor; F29 (works started) is not visible in the twin.

// RolloutFact is one published progress figure: a row of the public facts
// table (read with rules/milestone.LoadFactsFile by the caller, which this
// package may not import).
type RolloutFact struct {
	ID     string
	Date   time.Time
	Value  float64
	Unit   string
	Metric string // as published; the first offices are named in it
}

// Which curve a fact shapes.
const (
	curveOffices   = "offices"
	curveCoworking = "coworking"
)

// rolloutAnchors are the facts the rollout is shaped by, in date order per
// curve, with the units each must be in.
var rolloutAnchors = []struct {
	id, curve string
	units     []string
}{
	{"F12", curveOffices, []string{"uffici"}},       // 2022-11-30: 3 prototypes completing
	{"F15", curveOffices, []string{"uffici"}},       // 2023-02-01: 40 offices with works completed
	{"F26", curveOffices, []string{"uffici"}},       // 2023-12-31: about 1,500 offices completed
	{"F30", curveOffices, []string{"interventi"}},   // 2024-11-30: 2,548 interventions concluded
	{"F45", curveOffices, []string{"interventi"}},   // 2026-01-16: about 4,700 interventions concluded
	{"F41", curveCoworking, []string{"interventi"}}, // 2024-11-30: 48 coworking spaces concluded
}

// pioneerFacts name the first offices in their metric, in parentheses.
var pioneerFacts = []string{"F12", "F24", "F25"}

// RolloutFactIDs lists the facts PlanRollout needs (and the ones whose
// named comuni go first, when present).
func RolloutFactIDs() []string {
	var ids []string
	for _, a := range rolloutAnchors {
		ids = append(ids, a.id)
	}
	return ids
}

// Start of works, where the curves start from zero (assumptions, not facts:
// the milestones take Q1 2022 for the offices; the coworking programme was
// announced on 2023-02-01, F23).
var (
	OfficeWorksStart    = time.Date(2022, 1, 10, 0, 0, 0, 0, time.UTC)
	CoworkingWorksStart = time.Date(2023, 2, 1, 0, 0, 0, 0, time.UTC)
)

// Defaults of RolloutOptions.
const (
	DefaultReferenceOffices   = 4800 // the fleet the design and the demo model
	DefaultReferenceCoworking = 250  // F23
	DefaultRolloutActor       = "rollout"
)

// Causes the rollout records.
const (
	CauseRolloutInstall    = "rollout:installation"
	CauseRolloutAcceptance = "rollout:acceptance"
	CauseRolloutInService  = "rollout:in_service"
	CauseRolloutFault      = "rollout:fault"
	CauseRolloutRepair     = "rollout:repair"
)

// RolloutOptions shape a rollout.
type RolloutOptions struct {
	Now   time.Time // the history ends here: nothing is dated after it
	Seed  uint64    // same seed, registry and now: the same history
	Facts []RolloutFact
	// ReferenceOffices and ReferenceCoworking are the fleet sizes the
	// published figures count against (0: DefaultReferenceOffices and
	// DefaultReferenceCoworking); a fleet of N offices gets
	// N/ReferenceOffices of each figure.
	ReferenceOffices   int
	ReferenceCoworking int
	Actor              string // recorded on each event (default DefaultRolloutActor)
}

// curve is a cumulative count over time, in units of the reference fleet.
type curve struct {
	t     []float64 // Unix seconds, increasing
	c     []float64 // cumulative, non-decreasing, c[0] = 0
	total float64   // the reference fleet: the limit of the tail
	tau   float64   // seconds
}

// newCurve builds a curve from the start of works and the anchors.
func newCurve(start time.Time, anchors []RolloutFact, total float64) (*curve, error) {
	cv := &curve{t: []float64{float64(start.Unix())}, c: []float64{0}, total: total}
	for _, a := range anchors {
		t, c := float64(a.Date.Unix()), a.Value
		last := len(cv.t) - 1
		switch {
		case t <= cv.t[last]:
			return nil, fmt.Errorf("fact %s (%s) is not after the one before it", a.ID, a.Date.Format(time.DateOnly))
		case c <= cv.c[last]:
			return nil, fmt.Errorf("fact %s (%g) is not above the one before it (%g)", a.ID, c, cv.c[last])
		case c >= total:
			return nil, fmt.Errorf("fact %s (%g) is not below the reference fleet (%g)", a.ID, c, total)
		}
		cv.t, cv.c = append(cv.t, t), append(cv.c, c)
	}
	n := len(cv.t) - 1
	if n == 0 {
		return nil, fmt.Errorf("no progress figure after %s", start.Format(time.DateOnly))
	}
	pace := (cv.c[n] - cv.c[n-1]) / (cv.t[n] - cv.t[n-1])
	cv.tau = max((total-cv.c[n])/pace, 365*86400)
	return cv, nil
}

// when is the first time the curve reaches c (0 <= c < total).
func (cv *curve) when(c float64) float64 {
	n := len(cv.t) - 1
	if c >= cv.c[n] {
		return cv.t[n] - cv.tau*math.Log(1-(c-cv.c[n])/(cv.total-cv.c[n]))
	}
	i := sort.Search(len(cv.c), func(i int) bool { return cv.c[i] >= c })
	if i == 0 {
		return cv.t[0]
	}
	f := (c - cv.c[i-1]) / (cv.c[i] - cv.c[i-1])
	return cv.t[i-1] + f*(cv.t[i]-cv.t[i-1])
}

// SetAllPlanned records every asset as planned, with no installation date:
// the state a rollout's history starts from (the registry seeds the
// lifecycle tracker, and the history moves it on).
func (r *Registry) SetAllPlanned() {
	for _, s := range r.Sites() {
		for _, a := range s.Assets {
			a.Lifecycle, a.InstalledAt = lifecycle.Planned, time.Time{}
		}
	}
}

// PlanRollout returns the lifecycle history of every asset of r up to
// o.Now, as described at the top of this file, ordered by time (then site
// and asset). Every asset's events are a path of lifecycle.Allowed moves
// from planned, strictly increasing in time. It is pure: the same
// registry, options and seed give the same events.
func PlanRollout(r *Registry, o RolloutOptions) ([]lifecycle.Event, error) {
	if o.Now.IsZero() {
		return nil, fmt.Errorf("cannot plan the rollout: no now")
	}
	if o.ReferenceOffices <= 0 {
		o.ReferenceOffices = DefaultReferenceOffices
	}
	if o.ReferenceCoworking <= 0 {
		o.ReferenceCoworking = DefaultReferenceCoworking
	}
	if o.Actor == "" {
		o.Actor = DefaultRolloutActor
	}
	anchors := map[string][]RolloutFact{}
	for _, a := range rolloutAnchors {
		f, ok := factByID(o.Facts, a.id)
		if !ok {
			return nil, fmt.Errorf("cannot plan the rollout: the facts have no %s (the rollout is shaped by %s)",
				a.id, strings.Join(RolloutFactIDs(), ", "))
		}
		if !slices.Contains(a.units, f.Unit) {
			return nil, fmt.Errorf("cannot plan the rollout: fact %s is in %q; want %s", a.id, f.Unit, strings.Join(a.units, " or "))
		}
		anchors[a.curve] = append(anchors[a.curve], f)
	}
	offices, err := newCurve(OfficeWorksStart, anchors[curveOffices], float64(o.ReferenceOffices))
	if err != nil {
		return nil, fmt.Errorf("cannot plan the rollout of the offices: %w", err)
	}
	coworking, err := newCurve(CoworkingWorksStart, anchors[curveCoworking], float64(o.ReferenceCoworking))
	if err != nil {
		return nil, fmt.Errorf("cannot plan the rollout of the coworking spaces: %w", err)
	}
	p := &planner{o: o, rng: newRand(o.Seed, "rollout"), now: o.Now.UTC()}
	var po, cw []*Site
	for _, s := range r.Sites() {
		switch s.Kind {
		case KindPostOffice:
			po = append(po, s)
		case KindCoworking:
			cw = append(cw, s)
		}
	}
	p.kind(p.order(po, pioneers(o.Facts)), offices, OfficeWorksStart, o.ReferenceOffices)
	p.kind(p.order(cw, nil), coworking, CoworkingWorksStart, o.ReferenceCoworking)
	sort.SliceStable(p.out, func(i, j int) bool {
		a, b := p.out[i], p.out[j]
		if !a.At.Equal(b.At) {
			return a.At.Before(b.At)
		}
		if a.Site != b.Site {
			return a.Site < b.Site
		}
		return a.Asset < b.Asset
	})
	return p.out, nil
}

func factByID(facts []RolloutFact, id string) (RolloutFact, bool) {
	for _, f := range facts {
		if f.ID == id {
			return f, true
		}
	}
	return RolloutFact{}, false
}

// pioneers are the comuni the facts name as the first offices, in the
// order of the facts: "primi prototipi (Fara in Sabina; Campagnano di
// Roma; ...)" or "(Candelo BI; Tolmezzo UD; ...)", lower case.
func pioneers(facts []RolloutFact) []string {
	var out []string
	for _, id := range pioneerFacts {
		f, ok := factByID(facts, id)
		if !ok {
			continue
		}
		open, end := strings.IndexByte(f.Metric, '('), strings.LastIndexByte(f.Metric, ')')
		if open < 0 || end < open {
			continue
		}
		for _, name := range strings.Split(f.Metric[open+1:end], ";") {
			name = strings.TrimSpace(name)
			// A trailing province code: "Candelo BI".
			if i := strings.LastIndexByte(name, ' '); i > 0 && isUpper(name[i+1:], 2) {
				name = name[:i]
			}
			if name != "" {
				out = append(out, strings.ToLower(name))
			}
		}
	}
	return out
}

type planner struct {
	o   RolloutOptions
	rng *rand.Rand
	now time.Time
	out []lifecycle.Event
}

// order ranks sites for completion: the named pioneers first, then by
// their region's phase plus noise.
func (p *planner) order(sites []*Site, first []string) []*Site {
	regions := map[string]bool{}
	for _, s := range sites {
		regions[s.Region] = true
	}
	names := sortedKeys(regions)
	phase := map[string]float64{}
	for i, j := range p.rng.Perm(len(names)) {
		phase[names[j]] = float64(i) / float64(max(len(names), 1))
	}
	key := make(map[*Site]float64, len(sites))
	for _, s := range sites {
		key[s] = 0.6*phase[s.Region] + 0.4*p.rng.Float64()
		name := strings.ToLower(s.Name)
		if i := strings.IndexByte(name, '/'); i > 0 {
			name = name[:i] // bilingual names: "Chiusa/Klausen"
		}
		if i := slices.Index(first, name); i >= 0 && strings.HasSuffix(s.ID, "-1") {
			key[s] = -1 + float64(i)/float64(len(first))
		}
	}
	out := slices.Clone(sites)
	sort.SliceStable(out, func(i, j int) bool { return key[out[i]] < key[out[j]] })
	return out
}

const day = 24 * time.Hour

// kind dates the sites of one kind, in completion order, on their curve.
func (p *planner) kind(sites []*Site, cv *curve, start time.Time, reference int) {
	scale := float64(len(sites)) / float64(reference)
	for k, s := range sites {
		done := time.Unix(int64(cv.when((float64(k)+0.5)/scale)), 0).UTC()
		p.site(s, done, start)
	}
}

// site dates one site's assets so that the last is commissioned at done,
// and emits what happened by now.
func (p *planner) site(s *Site, done, start time.Time) {
	type plan struct {
		a                   *Asset
		install, commission time.Time
		service             time.Duration
	}
	works := time.Duration(10+p.rng.IntN(36)) * day // installation spread over 10-45 days
	plans := make([]plan, len(s.Assets))
	var last time.Time
	for i, a := range s.Assets {
		in := time.Duration(p.rng.Float64() * float64(works))
		if a.Type == GatewayType {
			in = 0 // the gateway goes in first: the others report through it
		}
		accept := time.Duration((3 + 12*p.rng.Float64()) * float64(day))
		plans[i] = plan{a: a, install: done.Add(in - works), commission: done.Add(in - works + accept),
			service: time.Duration((0.5 + 4.5*p.rng.Float64()) * float64(day))}
		if plans[i].commission.After(last) {
			last = plans[i].commission
		}
	}
	shift := done.Sub(last) // the last commissioning falls on done
	for i := range plans {
		pl := &plans[i]
		pl.install = workingHours(pl.install.Add(shift), p.rng)
		pl.commission = pl.commission.Add(shift)
		if pl.install.Before(start) {
			// The first sites cannot have started before the works did.
			d := start.Add(time.Duration(p.rng.IntN(8*3600))*time.Second + 8*time.Hour).Sub(pl.install)
			pl.install, pl.commission = pl.install.Add(d), pl.commission.Add(d)
		}
		p.asset(s, pl.a, pl.install, pl.commission, pl.commission.Add(pl.service))
	}
}

// asset emits an asset's events up to now: installed, commissioned, in
// service, and maybe a fault (repaired, or open now).
func (p *planner) asset(s *Site, a *Asset, install, commission, service time.Time) {
	from := lifecycle.Planned
	emit := func(to lifecycle.State, at time.Time, cause string) bool {
		at = at.Truncate(time.Second)
		if at.After(p.now) {
			return false
		}
		p.out = append(p.out, lifecycle.Event{Site: s.ID, Asset: a.ID, From: from, To: to, At: at, Actor: p.o.Actor, Cause: cause})
		from = to
		return true
	}
	// Draw the same numbers whatever happened by now, so that an earlier
	// now gives a prefix of the same history.
	faulty, faultAt, repairIn := p.rng.Float64(), p.rng.Float64(), p.rng.Float64()
	if !emit(lifecycle.Installed, install, CauseRolloutInstall) ||
		!emit(lifecycle.Commissioned, commission, CauseRolloutAcceptance) ||
		!emit(lifecycle.Operational, service, CauseRolloutInService) {
		return
	}
	// At most one fault per asset: faults come at faultsPerYear while in
	// service and take 1-45 days to repair, so that at any date about
	// faultsPerYear × 23/365 (some 0.8%) of the assets in service are
	// faulty, the end of the history included.
	inService := p.now.Sub(service)
	if faulty >= faultsPerYear*inService.Hours()/(365*24) {
		return
	}
	at := service.Add(time.Hour + time.Duration(faultAt*float64(inService-time.Hour)))
	if emit(lifecycle.Faulty, at, CauseRolloutFault) {
		emit(lifecycle.Operational, at.Add(time.Duration((1+44*repairIn)*float64(day))), CauseRolloutRepair)
	}
}

// faultsPerYear is the rate of faults of an asset in service.
const faultsPerYear = 0.12

// workingHours moves t into a technician's day in Rome: Monday to Friday,
// 08:00-17:00, keeping the date when it can (later the same day, else the
// next working morning), with a few random minutes.
func workingHours(t time.Time, rng *rand.Rand) time.Time {
	lt := t.In(rome())
	h := lt.Hour()
	if h < 8 {
		lt = time.Date(lt.Year(), lt.Month(), lt.Day(), 8, rng.IntN(60), 0, 0, lt.Location())
	} else if h >= 17 {
		lt = time.Date(lt.Year(), lt.Month(), lt.Day()+1, 8, rng.IntN(60), 0, 0, lt.Location())
	}
	for lt.Weekday() == time.Saturday || lt.Weekday() == time.Sunday {
		lt = lt.AddDate(0, 0, 1)
	}
	return lt.UTC()
}
