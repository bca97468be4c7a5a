package progress

import "slices"

// index holds the lookups of a Snapshot, built once by (*Snapshot).Index
// when the snapshot is made: pages look up an area or an office per
// request, so every lookup is a map access.
type index struct {
	regions   map[string]*Area   // by slug
	provinces map[string]*Area   // by slug (sigla, lower case)
	comuni    map[string]*Area   // by ISTAT code
	offices   map[string]*Office // post offices and coworking spaces, by site id
	// provincesOf maps a region's slug to its provinces, by name.
	provincesOf map[string][]*Area
	// comuniOf maps a province's slug to its comuni with a site, by name.
	comuniOf map[string][]*Area
	// sites maps an area (kind and key: slug, or code for comuni) to its
	// post offices and coworking spaces, by site id.
	officesIn map[areaKey][]*Office
	coworking map[areaKey][]*Office
}

type areaKey struct {
	kind AreaKind
	key  string
}

func keyOf(a *Area) areaKey {
	if a.Kind == AreaComune {
		return areaKey{a.Kind, a.Code}
	}
	return areaKey{a.Kind, a.Slug}
}

// Index builds the snapshot's lookups. The Builder and Fixture call it; a
// Snapshot decoded from JSON or assembled by hand needs it before its
// lookups answer. It must not run concurrently with lookups.
func (s *Snapshot) Index() {
	x := index{
		regions:     make(map[string]*Area, len(s.Regions)),
		provinces:   make(map[string]*Area, len(s.Provinces)),
		comuni:      make(map[string]*Area, len(s.Comuni)),
		offices:     make(map[string]*Office, len(s.Offices)+len(s.Coworking)),
		provincesOf: map[string][]*Area{},
		comuniOf:    map[string][]*Area{},
		officesIn:   map[areaKey][]*Office{},
		coworking:   map[areaKey][]*Office{},
	}
	for _, a := range s.Regions {
		x.regions[a.Slug] = a
	}
	for _, a := range s.Provinces {
		x.provinces[a.Slug] = a
		x.provincesOf[a.Parent] = append(x.provincesOf[a.Parent], a)
	}
	for _, a := range s.Comuni {
		x.comuni[a.Code] = a
		x.comuniOf[a.Parent] = append(x.comuniOf[a.Parent], a)
	}
	add := func(m map[areaKey][]*Office, o *Office) {
		m[areaKey{AreaItaly, "italia"}] = append(m[areaKey{AreaItaly, "italia"}], o)
		if o.RegionSlug != "" {
			m[areaKey{AreaRegion, o.RegionSlug}] = append(m[areaKey{AreaRegion, o.RegionSlug}], o)
		}
		if o.Province != "" {
			k := areaKey{AreaProvince, Slug(o.Province)}
			m[k] = append(m[k], o)
		}
		if o.Comune != "" {
			m[areaKey{AreaComune, o.Comune}] = append(m[areaKey{AreaComune, o.Comune}], o)
		}
	}
	for _, o := range s.Offices {
		x.offices[o.Site] = o
		add(x.officesIn, o)
	}
	for _, o := range s.Coworking {
		x.offices[o.Site] = o
		add(x.coworking, o)
	}
	bySite := func(a, b *Office) int {
		switch {
		case a.Site < b.Site:
			return -1
		case a.Site > b.Site:
			return 1
		}
		return 0
	}
	for _, m := range []map[areaKey][]*Office{x.officesIn, x.coworking} {
		for _, os := range m {
			if !slices.IsSortedFunc(os, bySite) {
				slices.SortFunc(os, bySite)
			}
		}
	}
	s.idx = x
}

// Region returns the region with that slug ("emilia-romagna"), or nil.
func (s *Snapshot) Region(slug string) *Area { return s.idx.regions[slug] }

// Province returns the province with that slug (its sigla in lower case,
// "bz"), or nil.
func (s *Snapshot) Province(slug string) *Area { return s.idx.provinces[slug] }

// Comune returns the comune with that ISTAT code ("001001"), or nil; only
// comuni with a site of the programme are known.
func (s *Snapshot) Comune(code string) *Area { return s.idx.comuni[code] }

// Office returns the post office or coworking space with that site id, or nil.
func (s *Snapshot) Office(site string) *Office { return s.idx.offices[site] }

// ProvincesOf returns the provinces of a region, by name; nil for an
// unknown region. The slice is shared: do not modify it.
func (s *Snapshot) ProvincesOf(regionSlug string) []*Area { return s.idx.provincesOf[regionSlug] }

// OfficesIn returns the post offices in an area (Italy, a region, a
// province or a comune), by site id; nil for an area without any. The
// slice is shared: do not modify it.
func (s *Snapshot) OfficesIn(a *Area) []*Office {
	if a == nil {
		return nil
	}
	return s.idx.officesIn[keyOf(a)]
}

// CoworkingIn returns the coworking spaces in an area, by site id, as
// OfficesIn does for post offices.
func (s *Snapshot) CoworkingIn(a *Area) []*Office {
	if a == nil {
		return nil
	}
	return s.idx.coworking[keyOf(a)]
}

// ComuniIn returns the comuni of a province (by its slug) that have a
// site, by name. The slice is shared: do not modify it.
func (s *Snapshot) ComuniIn(provinceSlug string) []*Area { return s.idx.comuniOf[provinceSlug] }
