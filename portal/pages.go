package portal

import (
	"cmp"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/polis-platform/polis/portal/opendata"
	"github.com/polis-platform/polis/portal/progress"
	"github.com/polis-platform/polis/rules/milestone"
	"github.com/polis-platform/polis/services"
	"github.com/polis-platform/polis/twin/lifecycle"
)

// routes registers every page. The paths are the portal's public,
// stable addresses: change none without a redirect.
func (h *Handler) routes() {
	h.pageRoute("GET /{$}", "home.html", true, h.home)
	h.pageRoute("GET /obiettivi", "targets.html", true, h.targets)
	h.pageRoute("GET /regioni", "regions.html", true, h.regions)
	h.pageRoute("GET /regioni/{regione}", "region.html", true, h.region)
	h.pageRoute("GET /province/{provincia}", "province.html", true, h.province)
	h.pageRoute("GET /comuni/{istat}", "comune.html", true, h.comune)
	h.pageRoute("GET /uffici/{site}", "office.html", true, h.office)
	h.pageRoute("GET /coworking", "coworking.html", true, h.coworkingList)
	h.pageRoute("GET /coworking/{site}", "office.html", true, h.office)
	h.pageRoute("GET /fornitori", "suppliers.html", true, h.suppliers)
	h.pageRoute("GET /finanziamento", "funding.html", true, h.funding)
	h.pageRoute("GET /metodo", "method.html", false, h.method)
	h.pageRoute("GET /cerca", "search.html", true, h.search)
	h.pageRoute("GET /open-data", "opendata.html", false, h.openData)
	h.pageRoute("GET /dichiarazione-accessibilita", "accessibility.html", false, h.accessibility)
	h.pageRoute("GET /segnalazioni", "feedback.html", false, h.feedback)
	h.mux.HandleFunc("GET /uffici/{site}/servizi.csv", h.servicesData("csv"))
	h.mux.HandleFunc("GET /uffici/{site}/servizi.json", h.servicesData("json"))
	h.mux.Handle("GET /static/", h.assets)
	h.mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, h.assets.url("img/favicon.svg"), http.StatusMovedPermanently)
	})
	h.mux.HandleFunc("GET /robots.txt", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "public, max-age=86400")
		w.Write([]byte("User-agent: *\nAllow: /\n"))
	})
	if h.o.OpenData != nil {
		h.mux.Handle("/dati/", h.o.OpenData)
		h.mux.Handle("/feed.atom", h.o.OpenData)
	}
	h.mux.HandleFunc("/", h.catchAll)
}

// ---- overview ----

// targetGroup is the targets that count the same thing: more than one
// means that the sources disagree, and the page says so.
type targetGroup struct {
	Measure string
	Targets []progress.Target
}

// Disagree reports whether the sources disagree on the group's figure
// (progress says which targets do: an intermediate target with an earlier
// deadline does not disagree with the final one).
func (g targetGroup) Disagree() bool {
	for _, t := range g.Targets {
		if len(t.Disagrees) > 0 {
			return true
		}
	}
	return false
}

// groupTargets groups targets by measure, keeping the order of first
// appearance.
func groupTargets(ts []progress.Target) []targetGroup {
	var out []targetGroup
	at := map[string]int{}
	for _, t := range ts {
		i, ok := at[t.Measure]
		if !ok {
			i = len(out)
			at[t.Measure] = i
			out = append(out, targetGroup{Measure: t.Measure})
		}
		out[i].Targets = append(out[i].Targets, t)
	}
	return out
}

// typeRow is one asset type's counts in an area, with the targets that
// count it nationally.
type typeRow struct {
	Type    string
	Name    string
	Counts  progress.Counts
	Targets []progress.Target
}

// typeRows lists an area's counts in progress.TypeOrder, types it has
// none of left out; targets are matched by measure name ("atm_installed").
func typeRows(a *progress.Area, targets []progress.Target) []typeRow {
	var rows []typeRow
	seen := map[string]bool{}
	add := func(t string) {
		c, ok := a.ByType[t]
		if !ok || seen[t] {
			return
		}
		seen[t] = true
		r := typeRow{Type: t, Name: progress.TypeName(t), Counts: c}
		for _, tg := range targets {
			if strings.HasPrefix(tg.Measure, t+"_") {
				r.Targets = append(r.Targets, tg)
			}
		}
		rows = append(rows, r)
	}
	for _, t := range progress.TypeOrder {
		add(t)
	}
	rest := make([]string, 0, len(a.ByType))
	for t := range a.ByType {
		rest = append(rest, t)
	}
	slices.Sort(rest)
	for _, t := range rest {
		add(t)
	}
	return rows
}

type homeData struct {
	Italy      *progress.Area
	Groups     []targetGroup
	Targets    []progress.Target
	Types      []typeRow
	Headline   *progress.Target // offices completed: the programme's main figure
	Projection projection
	Chart      chart
	Bars       chart
	Map        chart
	Published  []progress.Published
	Feed       []progress.FeedEntry
	Regions    []*progress.Area
}

// feedOnHome is how many feed entries the overview lists.
const feedOnHome = 8

func (h *Handler) home(r *http.Request, snap *progress.Snapshot) (*view, error) {
	d := &homeData{
		Italy:     snap.Italy,
		Groups:    groupTargets(snap.Targets),
		Targets:   snap.Targets,
		Published: snap.Published,
		Regions:   snap.Regions,
	}
	if d.Italy == nil {
		d.Italy = &progress.Area{Kind: progress.AreaItaly, Name: "Italia"}
	}
	d.Types = typeRows(d.Italy, snap.Targets)
	d.Headline = headline(snap.Targets)
	d.Projection = projectionOf(d.Headline, snap)
	d.Chart = trendChart("Uffici postali con intervento concluso in Italia", d.Italy, d.Headline, snap, true)
	d.Bars = targetBars(d.Types)
	d.Map = regionMap(snap, "")
	d.Feed = snap.Feed
	if len(d.Feed) > feedOnHome {
		d.Feed = d.Feed[:feedOnHome]
	}
	d.Feed = slices.Clone(d.Feed)
	for i, e := range d.Feed {
		d.Feed[i].Link = canonicalLink(snap, e.Link)
	}
	return &view{Title: "Il programma Polis in cifre", Nav: "home", Path: "/", Data: d}, nil
}

// headline is the first target counting offices completed, the
// programme's main figure; nil when there is none.
func headline(ts []progress.Target) *progress.Target {
	for i := range ts {
		if ts[i].Measure == "offices_completed" {
			return &ts[i]
		}
	}
	return nil
}

// projection is what the pace of the last months says of a target.
type projection struct {
	Target     *progress.Target
	Deadline   time.Time
	Achieved   bool
	NoPace     bool // nothing completed in the pace window
	Projected  time.Time
	Late       bool    // projected after the deadline
	AtDeadline float64 // the count at the deadline at the current pace
}

func projectionOf(t *progress.Target, snap *progress.Snapshot) projection {
	if t == nil {
		return projection{}
	}
	p := projection{Target: t, Deadline: t.Deadline}
	if p.Deadline.IsZero() {
		p.Deadline = snap.Deadline
	}
	switch {
	case !t.AchievedOn.IsZero() || t.Current >= t.Target:
		p.Achieved = true
	case t.Pace <= 0 || t.Projected.IsZero():
		p.NoPace = true
	default:
		p.Projected = t.Projected
		p.Late = !p.Deadline.IsZero() && t.Projected.After(p.Deadline)
	}
	if !p.Deadline.IsZero() && p.Deadline.After(snap.At) {
		p.AtDeadline = float64(t.Current) + t.Pace*p.Deadline.Sub(snap.At).Hours()/24
	}
	return p
}

func (h *Handler) targets(r *http.Request, snap *progress.Snapshot) (*view, error) {
	return &view{Title: "Obiettivi del programma", Nav: "obiettivi", Path: "/obiettivi", Data: snap.Targets}, nil
}

// ---- regions ----

type regionsData struct {
	Regions []*progress.Area
	Map     chart
}

func (h *Handler) regions(r *http.Request, snap *progress.Snapshot) (*view, error) {
	return &view{Title: "Le regioni", Nav: "regioni", Path: "/regioni",
		Data: regionsData{Regions: snap.Regions, Map: regionMap(snap, "")}}, nil
}

type regionData struct {
	Area      *progress.Area
	Provinces []*progress.Area
	Types     []typeRow
	Chart     chart
	Map       chart
	Coworking []*progress.Office
}

func (h *Handler) region(r *http.Request, snap *progress.Snapshot) (*view, error) {
	a := snap.Region(r.PathValue("regione"))
	if a == nil {
		return nil, errNotFound
	}
	d := regionData{
		Area:      a,
		Provinces: snap.ProvincesOf(a.Slug),
		Types:     typeRows(a, nil),
		Chart:     trendChart("Uffici postali con intervento concluso: "+a.Name, a, nil, snap, false),
		Map:       regionMap(snap, a.Slug),
		Coworking: snap.CoworkingIn(a),
	}
	return &view{Title: a.Name, Nav: "regioni", Path: "/regioni/" + a.Slug,
		Crumbs: []crumb{{"Regioni", "/regioni"}}, Data: d}, nil
}

type provinceData struct {
	Area      *progress.Area
	Region    *progress.Area
	Comuni    []*progress.Area
	Offices   []*progress.Office
	Coworking []*progress.Office
	Types     []typeRow
}

func (h *Handler) province(r *http.Request, snap *progress.Snapshot) (*view, error) {
	a := snap.Province(r.PathValue("provincia"))
	if a == nil {
		return nil, errNotFound
	}
	d := provinceData{Area: a, Region: snap.Region(a.Parent), Comuni: snap.ComuniIn(a.Slug),
		Offices: snap.OfficesIn(a), Coworking: snap.CoworkingIn(a), Types: typeRows(a, nil)}
	v := &view{Title: "Provincia di " + a.Name, Nav: "regioni", Path: "/province/" + a.Slug, Data: d}
	v.Crumbs = append(v.Crumbs, crumb{"Regioni", "/regioni"})
	if d.Region != nil {
		v.Crumbs = append(v.Crumbs, crumb{d.Region.Name, "/regioni/" + d.Region.Slug})
	}
	return v, nil
}

type comuneData struct {
	Area      *progress.Area
	Province  *progress.Area
	Region    *progress.Area
	Offices   []*progress.Office
	Coworking []*progress.Office
	Types     []typeRow
}

func (h *Handler) comune(r *http.Request, snap *progress.Snapshot) (*view, error) {
	a := snap.Comune(r.PathValue("istat"))
	if a == nil {
		return nil, errNotFound
	}
	d := comuneData{Area: a, Province: snap.Province(a.Parent), Offices: snap.OfficesIn(a),
		Coworking: snap.CoworkingIn(a), Types: typeRows(a, nil)}
	if d.Province != nil {
		d.Region = snap.Region(d.Province.Parent)
	}
	v := &view{Title: a.Name, Nav: "regioni", Path: "/comuni/" + a.Code, Data: d}
	v.Crumbs = areaCrumbs(d.Region, d.Province)
	return v, nil
}

// areaCrumbs is the breadcrumb trail down to a province.
func areaCrumbs(region, province *progress.Area) []crumb {
	c := []crumb{{"Regioni", "/regioni"}}
	if region != nil {
		c = append(c, crumb{region.Name, "/regioni/" + region.Slug})
	}
	if province != nil {
		c = append(c, crumb{"Provincia di " + province.Name, "/province/" + province.Slug})
	}
	return c
}

// ---- an office ----

type officeData struct {
	Office     *progress.Office
	Coworking  bool
	Region     *progress.Area
	Province   *progress.Area
	Comune     *progress.Area
	Hours      []string
	Services   []services.Availability
	ServicesOK bool // the services' answer is known
	Available  int
	Suppliers  []officeSupplier
	Working    int
	Installed  int
	Month      string // the calendar month of the energy figures
	EnergyAt   time.Time
}

// officeSupplier is one supplier of an office's assets and its contract.
type officeSupplier struct {
	Name  string
	CIG   string
	Types []string
}

func (h *Handler) office(r *http.Request, snap *progress.Snapshot) (*view, error) {
	site := r.PathValue("site")
	o := snap.Office(site)
	if o == nil {
		return nil, errNotFound
	}
	cw := o.Kind == "coworking"
	// Each kind at its own address: the other one is a redirect, not a
	// second copy of the page.
	if onCoworking := strings.HasPrefix(r.URL.Path, "/coworking/"); onCoworking != cw {
		return nil, redirectTo(officePath(o))
	}
	now := h.o.Now()
	d := &officeData{Office: o, Coworking: cw, Region: snap.Region(o.RegionSlug),
		Province: snap.Province(progress.Slug(o.Province)), Comune: snap.Comune(o.Comune),
		Hours: italianHours(o.OpeningHours), Month: formatMonth(snap.EnergyAt), EnergyAt: snap.EnergyAt}
	if d.EnergyAt.IsZero() {
		d.Month = formatMonth(snap.At)
	}
	if h.o.Services != nil {
		d.Services, d.ServicesOK = h.o.Services.Office(o.Site, now)
		for _, a := range d.Services {
			if a.Available {
				d.Available++
			}
		}
	}
	sup := map[string]int{}
	for _, a := range o.Assets {
		if a.WorkingNow {
			d.Working++
		}
		if a.Lifecycle != lifecycle.Planned && a.Lifecycle != lifecycle.Decommissioned {
			d.Installed++
		}
		if a.Supplier == "" {
			continue
		}
		key := a.Supplier + "\x00" + a.CIG
		i, ok := sup[key]
		if !ok {
			i = len(d.Suppliers)
			sup[key] = i
			d.Suppliers = append(d.Suppliers, officeSupplier{Name: a.Supplier, CIG: a.CIG})
		}
		if name := progress.TypeName(a.Type); !slices.Contains(d.Suppliers[i].Types, name) {
			d.Suppliers[i].Types = append(d.Suppliers[i].Types, name)
		}
	}
	title := "Ufficio postale di " + o.ComuneName
	crumbs := areaCrumbs(d.Region, d.Province)
	if d.Comune != nil {
		crumbs = append(crumbs, crumb{d.Comune.Name, "/comuni/" + d.Comune.Code})
	}
	nav := "regioni"
	if cw {
		title = "Spazio di coworking di " + o.ComuneName
		crumbs = []crumb{{"Coworking", "/coworking"}}
		nav = "coworking"
	}
	title += " (" + o.Site + ")"
	return &view{Title: title, Nav: nav, Path: officePath(o), Crumbs: crumbs, Data: d,
		Now: now, Live: h.o.Services != nil}, nil
}

// canonicalLink gives the page of a site at its own address: a feed entry
// links every site as /uffici/{site}, coworking spaces included, which
// would answer with a redirect.
func canonicalLink(snap *progress.Snapshot, link string) string {
	if site, ok := strings.CutPrefix(link, "/uffici/"); ok {
		if o := snap.Office(site); o != nil {
			return officePath(o)
		}
	}
	return link
}

// officePath is the page of an office or coworking space.
func officePath(o *progress.Office) string {
	if o.Kind == "coworking" {
		return "/coworking/" + o.Site
	}
	return "/uffici/" + o.Site
}

// ---- coworking, suppliers, funding ----

type coworkingData struct {
	Spaces                         []*progress.Office
	Workstations, FreeWorkstations int
	Rooms, FreeRooms               int
	Targets                        []targetGroup
}

func (h *Handler) coworkingList(r *http.Request, snap *progress.Snapshot) (*view, error) {
	d := coworkingData{Spaces: snap.Coworking}
	for _, o := range snap.Coworking {
		d.Workstations += o.Workstations
		d.FreeWorkstations += o.FreeWorkstations
		d.Rooms += o.MeetingRooms
		d.FreeRooms += o.FreeRooms
	}
	var ts []progress.Target
	for _, t := range snap.Targets {
		if t.Line == milestone.LineSpaziPerItalia {
			ts = append(ts, t)
		}
	}
	d.Targets = groupTargets(ts)
	return &view{Title: "Spazi di coworking", Nav: "coworking", Path: "/coworking", Data: d}, nil
}

func (h *Handler) suppliers(r *http.Request, snap *progress.Snapshot) (*view, error) {
	s := slices.Clone(snap.Suppliers)
	slices.SortStableFunc(s, func(a, b progress.Supplier) int { return cmp.Compare(b.Assets, a.Assets) })
	return &view{Title: "Fornitori", Nav: "fornitori", Path: "/fornitori", Data: s}, nil
}

type fundingData struct {
	Funding []progress.Funding
	Targets []targetGroup
}

func (h *Handler) funding(r *http.Request, snap *progress.Snapshot) (*view, error) {
	var ts []progress.Target
	for _, t := range snap.Targets {
		if t.Line == milestone.LineProgramma {
			ts = append(ts, t)
		}
	}
	return &view{Title: "Finanziamento", Nav: "finanziamento", Path: "/finanziamento",
		Data: fundingData{Funding: snap.Funding, Targets: groupTargets(ts)}}, nil
}

// ---- method, search, static pages ----

func (h *Handler) method(r *http.Request, snap *progress.Snapshot) (*view, error) {
	return &view{Title: "Come calcoliamo", Nav: "metodo", Path: "/metodo", Data: allMethods()}, nil
}

type searchData struct {
	Query   string
	Results []*progress.Area
	Total   int
	Limit   int
	Regions map[string]*progress.Area // region of each result's province, by province slug
	Provs   map[string]*progress.Area
}

func (h *Handler) search(r *http.Request, snap *progress.Snapshot) (*view, error) {
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	if len(q) > maxQuery {
		q = q[:maxQuery]
	}
	d := searchData{Query: q, Limit: maxResults, Provs: map[string]*progress.Area{}}
	if q != "" {
		d.Results, d.Total = h.searchIndex(snap).search(q, maxResults)
		for _, c := range d.Results {
			if _, ok := d.Provs[c.Parent]; !ok {
				d.Provs[c.Parent] = snap.Province(c.Parent)
			}
		}
	}
	title := "Cerca un comune"
	if q != "" {
		title = "Risultati per «" + q + "»"
	}
	// Not cached: every query is a different page, and the cache must not
	// fill with them.
	return &view{Title: title, Path: "/cerca", Data: d, NoCache: true}, nil
}

// searchIndex returns the index of snap, building it on the first search
// after a new snapshot.
func (h *Handler) searchIndex(snap *progress.Snapshot) *searchIndex {
	h.searchMu.Lock()
	defer h.searchMu.Unlock()
	if h.searchSnap != snap || h.searchIx == nil {
		h.searchSnap, h.searchIx = snap, newSearchIndex(snap)
	}
	return h.searchIx
}

type openDataData struct {
	Tables   []opendata.Table
	Plain    opendata.CSVDialect
	National opendata.CSVDialect
	Index    string
	Catalog  string
	Feed     string
}

func (h *Handler) openData(r *http.Request, snap *progress.Snapshot) (*view, error) {
	return &view{Title: "Open data", Nav: "opendata", Path: "/open-data", Data: openDataData{
		Tables: opendata.Tables(), Plain: opendata.PlainCSV, National: opendata.NationalCSV,
		Index: opendata.IndexPath, Catalog: opendata.CatalogPath, Feed: opendata.FeedPath,
	}}, nil
}

// accessibilityReviewed is when the accessibility statement was last
// reviewed against the pages (AgID asks for the date).
var accessibilityReviewed = time.Date(2026, time.December, 8, 0, 0, 0, 0, rome)

func (h *Handler) accessibility(r *http.Request, snap *progress.Snapshot) (*view, error) {
	return &view{Title: "Dichiarazione di accessibilità", Path: "/dichiarazione-accessibilita",
		Data: accessibilityReviewed}, nil
}

func (h *Handler) feedback(r *http.Request, snap *progress.Snapshot) (*view, error) {
	return &view{Title: "Segnalazioni e commenti", Path: "/segnalazioni"}, nil
}
