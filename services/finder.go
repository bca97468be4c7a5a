package services

import (
	"encoding/base64"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/polis-platform/polis/twin/registry"
)

// Fleet is the registry as the finder reads it; *registry.Registry
// implements it.
type Fleet interface {
	Sites() []*registry.Site
}

// Limits of a query.
const (
	DefaultRadiusKm = 25.0
	MaxRadiusKm     = 200.0
	DefaultLimit    = 20
	MaxLimit        = 100
	// DefaultRefresh is how often the finder looks for changes in the
	// registry (an import adds sites; lifecycles and live state are read
	// at every request and need no refresh).
	DefaultRefresh = 30 * time.Second
)

// ErrUnknownService is returned for a service id not in the catalogue.
var ErrUnknownService = errors.New("unknown service")

// QueryError is a query the finder cannot answer: Param names the
// parameter, Msg says what to send instead.
type QueryError struct {
	Param, Msg string
}

func (e *QueryError) Error() string { return e.Param + ": " + e.Msg }

// Query selects offices: near a point (within RadiusKm), in a comune or a
// region, or a combination. At least one of Near, Comune and Region is
// required.
type Query struct {
	Service   string           // a catalogue id (Find); ignored by Coworking
	Near      *registry.LatLon // nil: no distance, no radius
	RadiusKm  float64          // 0: DefaultRadiusKm; at most MaxRadiusKm
	Comune    string           // ISTAT code or name, any case
	Region    string           // any case; must be one of the fleet's
	Available *bool            // nil: both
	Limit     int              // 0: DefaultLimit; at most MaxLimit
	Cursor    string           // Page.Next of the previous page of the same query
}

// Place is where an office or coworking space is.
type Place struct {
	Site     string            `json:"site"`
	Kind     registry.SiteKind `json:"kind"`
	Name     string            `json:"name,omitempty"`
	Comune   string            `json:"comune,omitempty"`
	Province string            `json:"province,omitempty"`
	Region   string            `json:"region,omitempty"`
	Address  string            `json:"address,omitempty"`
	Lat      float64           `json:"lat,omitempty"`
	Lon      float64           `json:"lon,omitempty"`
	// DistanceKm from the query's point, when it has one.
	DistanceKm *float64 `json:"distance_km,omitempty"`
}

// OfficeAvailability is one office's answer for one service.
type OfficeAvailability struct {
	Place
	Availability Availability `json:"availability"`
}

// Page is one page of offices, available first, then by distance (when
// the query has a point), then by site id.
type Page struct {
	Items     []OfficeAvailability `json:"items"`
	Total     int                  `json:"total"`     // offices matching the query, over every page
	Available int                  `json:"available"` // of which available now
	Next      string               `json:"-"`         // the cursor of the next page, "" on the last
}

// Capacity counts desks or rooms; Free is omitted when another instance
// holds the space's live state.
type Capacity struct {
	Total int  `json:"total"`
	Free  *int `json:"free,omitempty"`
}

// CoworkingSpace is a coworking space's answer now.
type CoworkingSpace struct {
	Place
	OpenNow bool `json:"open_now"`
	// Available: a desk or a meeting room can be had now.
	Available bool           `json:"available"`
	Desks     Capacity       `json:"desks"`
	Rooms     Capacity       `json:"rooms"`
	Services  []Availability `json:"services"`
}

// CoworkingPage is one page of coworking spaces, ordered as Page.
type CoworkingPage struct {
	Items     []CoworkingSpace `json:"items"`
	Total     int              `json:"total"`
	Available int              `json:"available"`
	Next      string           `json:"-"`
}

// FinderOptions configure a Finder.
type FinderOptions struct {
	Catalogue *Catalogue // nil: DefaultCatalogue()
	Fleet     Fleet
	Twin      Twin
	Refresh   time.Duration // 0: DefaultRefresh
	Logger    *slog.Logger
}

// Finder answers, from memory, which services can be had where, now: a
// spatial index of the fleet (rebuilt when the registry changes), and the
// live twin read for the offices a query selects.
type Finder struct {
	cat     *Catalogue
	fleet   Fleet
	twin    Twin
	refresh time.Duration
	log     *slog.Logger

	snap    atomic.Pointer[snapshot]
	buildMu sync.Mutex
}

// NewFinder indexes the fleet.
func NewFinder(o FinderOptions) (*Finder, error) {
	if o.Fleet == nil || o.Twin == nil {
		return nil, errors.New("cannot start the services finder: Fleet and Twin are required")
	}
	if o.Catalogue == nil {
		o.Catalogue = DefaultCatalogue()
	}
	if o.Refresh <= 0 {
		o.Refresh = DefaultRefresh
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	f := &Finder{cat: o.Catalogue, fleet: o.Fleet, twin: o.Twin, refresh: o.Refresh, log: o.Logger.With("component", "services")}
	f.Refresh()
	return f, nil
}

// Catalogue is the finder's catalogue.
func (f *Finder) Catalogue() *Catalogue { return f.cat }

// Refresh rebuilds the index from the fleet now, if the fleet changed.
func (f *Finder) Refresh() {
	f.buildMu.Lock()
	defer f.buildMu.Unlock()
	f.refreshLocked()
}

func (f *Finder) refreshLocked() {
	sites := f.fleet.Sites()
	now := time.Now()
	if old := f.snap.Load(); old != nil && slices.Equal(old.sites, sites) {
		cp := *old
		cp.built = now
		f.snap.Store(&cp)
		return
	}
	began := time.Now()
	s := buildSnapshot(sites, f.cat, now)
	f.snap.Store(s)
	f.log.Debug("services index built", "sites", len(sites), "located", len(s.cells), "took", time.Since(began))
}

// snapshot is the current index, refreshed by the request that finds it
// older than the refresh interval (the others go on with the old one).
func (f *Finder) snapshot() *snapshot {
	s := f.snap.Load()
	if time.Since(s.built) >= f.refresh && f.buildMu.TryLock() {
		f.refreshLocked()
		f.buildMu.Unlock()
		s = f.snap.Load()
	}
	return s
}

// Office answers every service of the catalogue the site's kind offers,
// in catalogue order; false for an unknown site. The public portal's
// office page shows exactly this.
func (f *Finder) Office(site string, now time.Time) ([]Availability, bool) {
	s := f.snapshot()
	i, ok := s.byID[site]
	if !ok {
		return nil, false
	}
	e := &s.entries[i]
	ev := newOfficeEval(f.twin, e, now)
	out := []Availability{}
	for k := range f.cat.Services {
		svc := &f.cat.Services[k]
		if slices.Contains(svc.Sites, e.site.Kind) {
			out = append(out, ev.availability(svc))
		}
	}
	return out, true
}

// cursorKey is a position in the order of a result: available first, then
// nearer, then by site id.
type cursorKey struct {
	unavailable bool
	distM       int64
	site        string
}

func (a cursorKey) less(b cursorKey) bool {
	if a.unavailable != b.unavailable {
		return !a.unavailable
	}
	if a.distM != b.distM {
		return a.distM < b.distM
	}
	return a.site < b.site
}

// The cursor is opaque to clients: base64url of
// "c1|<query hash>|<0 available, 1 not>|<distance m>|<site>". The hash
// ties it to its query, so that a cursor is not replayed on another one.
func encodeCursor(qh string, k cursorKey) string {
	u := "0"
	if k.unavailable {
		u = "1"
	}
	return base64.RawURLEncoding.EncodeToString([]byte("c1|" + qh + "|" + u + "|" + strconv.FormatInt(k.distM, 10) + "|" + k.site))
}

func decodeCursor(s, qh string) (cursorKey, error) {
	bad := &QueryError{"cursor", "not a cursor this API made; use the next link of the previous page"}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) > 200 {
		return cursorKey{}, bad
	}
	parts := strings.Split(string(b), "|")
	if len(parts) != 5 || parts[0] != "c1" || (parts[2] != "0" && parts[2] != "1") || !registry.ValidSiteID(parts[4]) {
		return cursorKey{}, bad
	}
	d, err := strconv.ParseInt(parts[3], 10, 64)
	if err != nil || d < 0 {
		return cursorKey{}, bad
	}
	if parts[1] != qh {
		return cursorKey{}, &QueryError{"cursor", "the cursor belongs to another query; repeat the query without cursor, then follow its next links"}
	}
	return cursorKey{unavailable: parts[2] == "1", distM: d, site: parts[4]}, nil
}

// queryHash names a query's selection and order (not its page size).
func queryHash(kind string, q *Query) string {
	h := fnv.New64a()
	fmt.Fprintf(h, "%s|%s|%s|%s|%v|", kind, q.Service, strings.ToLower(q.Comune), strings.ToLower(q.Region), q.RadiusKm)
	if q.Near != nil {
		fmt.Fprintf(h, "%.6f,%.6f", q.Near.Lat, q.Near.Lon)
	}
	if q.Available != nil {
		fmt.Fprintf(h, "|%v", *q.Available)
	}
	return strconv.FormatUint(h.Sum64(), 36)
}

// candidate is a site a query selected, with its distance.
type candidate struct {
	i     int
	distM int64
}

// normalize checks a query and fills its defaults.
func (s *snapshot) normalize(q *Query) error {
	if q.Near == nil && q.Comune == "" && q.Region == "" {
		return &QueryError{"near", "give a point (near=lat,lon, e.g. near=41.9,12.5), a comune or a region"}
	}
	if q.Near != nil {
		if !(q.Near.Lat >= -90 && q.Near.Lat <= 90) || !(q.Near.Lon >= -180 && q.Near.Lon <= 180) {
			return &QueryError{"near", "must be lat,lon in degrees, e.g. near=41.9,12.5"}
		}
		if q.RadiusKm == 0 {
			q.RadiusKm = DefaultRadiusKm
		}
	}
	if !(q.RadiusKm >= 0 && q.RadiusKm <= MaxRadiusKm) { // also NaN
		return &QueryError{"radius_km", fmt.Sprintf("must be between 0 and %g (km; default %g)", MaxRadiusKm, DefaultRadiusKm)}
	}
	if q.Limit == 0 {
		q.Limit = DefaultLimit
	}
	if q.Limit < 1 || q.Limit > MaxLimit {
		return &QueryError{"limit", fmt.Sprintf("must be a whole number from 1 to %d (default %d)", MaxLimit, DefaultLimit)}
	}
	if q.Region != "" {
		if _, ok := s.regions[strings.ToLower(q.Region)]; !ok {
			names := make([]string, 0, len(s.regions))
			for _, r := range s.regions {
				names = append(names, r)
			}
			slices.Sort(names)
			return &QueryError{"region", fmt.Sprintf("unknown region %q; the fleet's regions are: %s", q.Region, strings.Join(names, ", "))}
		}
	}
	return nil
}

// candidates are the sites a query selects, before availability: the
// spatial index answers a point, the comune and region indexes the rest.
func (s *snapshot) candidates(q *Query, keep func(e *siteEntry) bool) []candidate {
	comune, region := strings.ToLower(q.Comune), strings.ToLower(q.Region)
	match := func(e *siteEntry) bool {
		if comune != "" && e.site.Comune != comune && strings.ToLower(e.site.Name) != comune {
			return false
		}
		if region != "" && strings.ToLower(e.site.Region) != region {
			return false
		}
		return keep(e)
	}
	var out []candidate
	switch {
	case q.Near != nil:
		s.within(*q.Near, q.RadiusKm, func(i int, d int64) {
			if match(&s.entries[i]) {
				out = append(out, candidate{i, d})
			}
		})
	case comune != "":
		for _, i := range s.byComune[comune] {
			if match(&s.entries[i]) {
				out = append(out, candidate{i: i})
			}
		}
	default:
		for _, i := range s.byRegion[region] {
			if match(&s.entries[i]) {
				out = append(out, candidate{i: i})
			}
		}
	}
	return out
}

func place(e *siteEntry, c candidate, near bool) Place {
	p := Place{Site: e.site.ID, Kind: e.site.Kind, Name: e.site.Name, Comune: e.site.Comune, Province: e.site.Province,
		Region: e.site.Region, Address: e.site.Address, Lat: e.site.Lat, Lon: e.site.Lon}
	if near {
		d := float64(c.distM) / 1000
		p.DistanceKm = &d
	}
	return p
}

// ranked is a result with its position in the order.
type ranked[T any] struct {
	key  cursorKey
	item T
}

// paginate sorts items and returns the page after the cursor, and the
// cursor of the next page.
func paginate[T any](items []ranked[T], q *Query, qh string) ([]T, string, error) {
	slices.SortFunc(items, func(a, b ranked[T]) int {
		switch {
		case a.key.less(b.key):
			return -1
		case b.key.less(a.key):
			return 1
		}
		return 0
	})
	start := 0
	if q.Cursor != "" {
		after, err := decodeCursor(q.Cursor, qh)
		if err != nil {
			return nil, "", err
		}
		start, _ = slices.BinarySearchFunc(items, after, func(r ranked[T], k cursorKey) int {
			if !k.less(r.key) { // r.key <= k
				return -1
			}
			return 1
		})
	}
	end := min(start+q.Limit, len(items))
	page := make([]T, 0, end-start)
	for _, r := range items[start:end] {
		page = append(page, r.item)
	}
	next := ""
	if end < len(items) {
		next = encodeCursor(qh, items[end-1].key)
	}
	return page, next, nil
}

// Find answers a service near a point, in a comune or in a region: the
// offices that list it, available first, then nearer, then by id.
func (f *Finder) Find(q Query, now time.Time) (Page, error) {
	k, ok := f.cat.byID[q.Service]
	if !ok {
		return Page{}, fmt.Errorf("%w %q", ErrUnknownService, q.Service)
	}
	svc := &f.cat.Services[k]
	s := f.snapshot()
	if err := s.normalize(&q); err != nil {
		return Page{}, err
	}
	cands := s.candidates(&q, func(e *siteEntry) bool { return e.offers[k] })
	type answer struct {
		c  candidate
		av Availability
	}
	items := make([]ranked[answer], 0, len(cands))
	out := Page{}
	for _, c := range cands {
		e := &s.entries[c.i]
		av := newOfficeEval(f.twin, e, now).availability(svc)
		if q.Available != nil && av.Available != *q.Available {
			continue
		}
		out.Total++
		if av.Available {
			out.Available++
		}
		items = append(items, ranked[answer]{key: cursorKey{unavailable: !av.Available, distM: c.distM, site: e.site.ID}, item: answer{c, av}})
	}
	page, next, err := paginate(items, &q, queryHash("offices", &q))
	if err != nil {
		return Page{}, err
	}
	// Places only for the page: most candidates are ranked, not shown.
	out.Items, out.Next = make([]OfficeAvailability, len(page)), next
	for i, a := range page {
		out.Items[i] = OfficeAvailability{Place: place(&s.entries[a.c.i], a.c, q.Near != nil), Availability: a.av}
	}
	return out, nil
}

// Coworking answers the coworking spaces near a point, in a comune or in
// a region: a space is available when a desk or a meeting room can be had
// now; ordered as Find.
func (f *Finder) Coworking(q Query, now time.Time) (CoworkingPage, error) {
	q.Service = ""
	s := f.snapshot()
	if err := s.normalize(&q); err != nil {
		return CoworkingPage{}, err
	}
	cands := s.candidates(&q, func(e *siteEntry) bool { return e.site.Kind == registry.KindCoworking })
	items := make([]ranked[CoworkingSpace], 0, len(cands))
	out := CoworkingPage{Items: []CoworkingSpace{}}
	for _, c := range cands {
		e := &s.entries[c.i]
		ev := newOfficeEval(f.twin, e, now)
		sp := CoworkingSpace{Place: place(e, c, q.Near != nil), OpenNow: ev.hoursState().Open, Services: []Availability{}}
		sp.Desks = ev.capacity(registry.TypeDesk)
		sp.Rooms = ev.capacity(registry.TypeRoom)
		for k := range f.cat.Services {
			svc := &f.cat.Services[k]
			if !slices.Contains(svc.Sites, registry.KindCoworking) {
				continue
			}
			av := ev.availability(svc)
			sp.Available = sp.Available || av.Available
			sp.Services = append(sp.Services, av)
		}
		if q.Available != nil && sp.Available != *q.Available {
			continue
		}
		out.Total++
		if sp.Available {
			out.Available++
		}
		items = append(items, ranked[CoworkingSpace]{key: cursorKey{unavailable: !sp.Available, distM: c.distM, site: e.site.ID}, item: sp})
	}
	var err error
	if out.Items, out.Next, err = paginate(items, &q, queryHash("coworking", &q)); err != nil {
		return CoworkingPage{}, err
	}
	return out, nil
}

// capacity counts a space's desks or rooms and those free now.
func (o *officeEval) capacity(typ string) Capacity {
	// Any service will do for desks and rooms: only lockers look at it.
	_, free, total, known := o.assetsReason(typ, &Service{})
	c := Capacity{Total: total}
	if known {
		c.Free = &free
	}
	return c
}
