package services

import (
	"sort"
	"strings"
	"time"

	"github.com/golang/geo/s1"
	"github.com/golang/geo/s2"

	"github.com/polis-platform/polis/twin/registry"
)

// EarthRadiusKm is the mean Earth radius (IUGG), which turns angles on the
// sphere into distances.
const EarthRadiusKm = 6371.0088

// siteEntry is one site as the finder indexes it.
type siteEntry struct {
	site   *registry.Site
	point  s2.Point
	cell   s2.CellID // leaf cell; 0 for a site without coordinates
	assets map[string][]*registry.Asset
	offers []bool // by catalogue index: the site's kind has it and a channel is equipped
}

// snapshot is the finder's index of the fleet: sites sorted by the S2 cell
// of their position (Hilbert order), so that the sites in a cell are a
// contiguous range found by binary search. It is rebuilt, never changed.
type snapshot struct {
	built    time.Time
	sites    []*registry.Site // as the fleet listed them, to see whether they changed
	entries  []siteEntry      // located first, by cell; then the others
	cells    []s2.CellID      // cells of the located entries, sorted
	byID     map[string]int
	byComune map[string][]int  // ISTAT code and lower-case name
	byRegion map[string][]int  // lower-case region
	regions  map[string]string // lower-case -> as written
}

// buildSnapshot indexes sites for catalogue c.
func buildSnapshot(sites []*registry.Site, c *Catalogue, built time.Time) *snapshot {
	s := &snapshot{built: built, sites: sites, entries: make([]siteEntry, 0, len(sites)),
		byID: make(map[string]int, len(sites)), byComune: map[string][]int{}, byRegion: map[string][]int{}, regions: map[string]string{}}
	for _, site := range sites {
		e := siteEntry{site: site, assets: map[string][]*registry.Asset{}, offers: make([]bool, len(c.Services))}
		for _, a := range site.Assets {
			if _, ok := codesOf[a.Type]; ok {
				e.assets[a.Type] = append(e.assets[a.Type], a)
			}
		}
		if site.Lat != 0 || site.Lon != 0 {
			ll := s2.LatLngFromDegrees(site.Lat, site.Lon)
			e.point, e.cell = s2.PointFromLatLng(ll), s2.CellIDFromLatLng(ll)
		}
		for i := range c.Services {
			e.offers[i] = offers(&c.Services[i], &e)
		}
		s.entries = append(s.entries, e)
	}
	// Located sites first, in cell order; ties (two sites at one point) by id.
	sort.SliceStable(s.entries, func(i, j int) bool {
		a, b := s.entries[i], s.entries[j]
		if (a.cell == 0) != (b.cell == 0) {
			return b.cell == 0
		}
		if a.cell != b.cell {
			return a.cell < b.cell
		}
		return a.site.ID < b.site.ID
	})
	for i, e := range s.entries {
		if e.cell != 0 {
			s.cells = append(s.cells, e.cell)
		}
		s.byID[e.site.ID] = i
		if e.site.Comune != "" {
			s.byComune[e.site.Comune] = append(s.byComune[e.site.Comune], i)
		}
		if e.site.Name != "" {
			k := strings.ToLower(e.site.Name)
			s.byComune[k] = append(s.byComune[k], i)
		}
		if e.site.Region != "" {
			k := strings.ToLower(e.site.Region)
			s.byRegion[k] = append(s.byRegion[k], i)
			s.regions[k] = e.site.Region
		}
	}
	return s
}

// offers says whether a site lists a service: its kind is one of the
// service's, and at least one channel is there (the counter at every post
// office, the others with an asset of their type, whatever its state).
func offers(svc *Service, e *siteEntry) bool {
	kindOK := false
	for _, k := range svc.Sites {
		kindOK = kindOK || k == e.site.Kind
	}
	if !kindOK {
		return false
	}
	for _, ch := range svc.Channels {
		switch ch {
		case ChannelCounter:
			return true
		case ChannelCoworking:
			for _, a := range svc.Needs {
				if a == registry.TypeDesk || a == registry.TypeRoom {
					if len(e.assets[a]) > 0 {
						return true
					}
				}
			}
		default:
			if len(e.assets[channelAsset[ch]]) > 0 {
				return true
			}
		}
	}
	return false
}

// coverer approximates a query circle with a few cells. Its fast
// covering (the cap's bounding cells, about the circle's size: 4 of them)
// costs a few microseconds where an optimal 8-cell covering costs tens:
// the looser covering brings a few hundred more sites to the exact
// distance test, which is cheaper than computing a tight one.
var coverer = &s2.RegionCoverer{MinLevel: 0, MaxLevel: s2.MaxLevel, MaxCells: 8}

// within calls fn for every located entry at most radiusKm from center,
// with its distance in metres, in no particular order. The covering's
// cells are disjoint, so an entry is visited once.
func (s *snapshot) within(center registry.LatLon, radiusKm float64, fn func(i int, distM int64)) {
	p := s2.PointFromLatLng(s2.LatLngFromDegrees(center.Lat, center.Lon))
	capR := s1.Angle(radiusKm / EarthRadiusKm)
	// The chord between two points grows with their angle, and costs a
	// subtraction and a dot product where the angle costs an arctangent:
	// the angle is computed only for the sites inside.
	chordR := s1.ChordAngleFromAngle(capR)
	cu := coverer.FastCovering(s2.CapFromCenterChordAngle(p, chordR))
	for _, c := range cu {
		lo, hi := c.RangeMin(), c.RangeMax()
		i := sort.Search(len(s.cells), func(i int) bool { return s.cells[i] >= lo })
		for ; i < len(s.cells) && s.cells[i] <= hi; i++ {
			if s2.ChordAngleBetweenPoints(s.entries[i].point, p) > chordR {
				continue
			}
			d := s.entries[i].point.Distance(p)
			fn(i, int64(d.Radians()*EarthRadiusKm*1000+0.5))
		}
	}
}
