package api

import (
	"encoding/base64"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/polis-platform/polis/twin/registry"
)

// Pagination of GET /api/v1/sites.
const (
	defaultLimit = 50
	maxLimit     = 1000
	maxQueryLen  = 200
)

// siteStatuses are the values of the status filter, as state.Status names them.
var siteStatuses = []string{"online", "offline", "stale", "fault", "unknown"}

var siteKinds = []string{string(registry.KindPostOffice), string(registry.KindCoworking)}

// siteParams are the query parameters GET /api/v1/sites accepts.
var siteParams = []string{"region", "province", "comune", "kind", "status", "asset_type", "q", "limit", "offset", "cursor"}

// siteQuery is a parsed GET /api/v1/sites query. Text filters are
// lower-cased; empty means no filter.
type siteQuery struct {
	Region, Province, Comune, Kind, Status, AssetType, Q string
	Limit, Offset                                        int
	After                                                string // cursor: list sites with id > After
}

// vocab is what the fleet holds, to tell a typo from an empty result.
type vocab struct {
	regions, provinces, types map[string]string // lower-case -> as written
}

func fleetVocab(sites []*registry.Site) vocab {
	v := vocab{regions: map[string]string{}, provinces: map[string]string{}, types: map[string]string{}}
	for _, s := range sites {
		if s.Region != "" {
			v.regions[strings.ToLower(s.Region)] = s.Region
		}
		if s.Province != "" {
			v.provinces[strings.ToLower(s.Province)] = s.Province
		}
		if s.ProvinceName != "" {
			v.provinces[strings.ToLower(s.ProvinceName)] = s.ProvinceName
		}
		for _, a := range s.Assets {
			v.types[a.Type] = a.Type
		}
	}
	return v
}

func sortedValues(m map[string]string) string {
	out := make([]string, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	slices.Sort(out)
	return strings.Join(out, ", ")
}

// badRequest is a 400 with a message saying what to send instead.
type badRequest struct{ msg string }

func (e *badRequest) Error() string { return e.msg }

func badf(format string, args ...any) error { return &badRequest{fmt.Sprintf(format, args...)} }

// parseSiteQuery validates the query of GET /api/v1/sites against the
// fleet's vocabulary. It is pure, and fuzzed.
func parseSiteQuery(v url.Values, voc vocab) (siteQuery, error) {
	q := siteQuery{Limit: defaultLimit}
	for name, vals := range v {
		if !slices.Contains(siteParams, name) {
			return q, badf("unknown parameter %q; the sites list takes %s", name, strings.Join(siteParams, ", "))
		}
		if len(vals) > 1 {
			return q, badf("parameter %q given %d times; give it once", name, len(vals))
		}
	}
	get := func(name string) string { return strings.TrimSpace(v.Get(name)) }
	for _, name := range siteParams {
		if s := v.Get(name); len(s) > maxQueryLen {
			return q, badf("parameter %q is %d bytes long; at most %d", name, len(s), maxQueryLen)
		}
	}
	if s := get("region"); s != "" {
		if _, ok := voc.regions[strings.ToLower(s)]; !ok {
			return q, badf("unknown region %q; the fleet's regions are: %s", s, sortedValues(voc.regions))
		}
		q.Region = strings.ToLower(s)
	}
	if s := get("province"); s != "" {
		if _, ok := voc.provinces[strings.ToLower(s)]; !ok {
			return q, badf("unknown province %q; give a 2-letter code or a name; the fleet's provinces are: %s", s, sortedValues(voc.provinces))
		}
		q.Province = strings.ToLower(s)
	}
	if s := get("comune"); s != "" {
		if s[0] >= '0' && s[0] <= '9' && !isDigits(s, 6) {
			return q, badf("comune %q: an ISTAT code has 6 digits (e.g. 001002); or give the comune's name", s)
		}
		q.Comune = strings.ToLower(s)
	}
	if s := get("kind"); s != "" {
		if !slices.Contains(siteKinds, s) {
			return q, badf("unknown kind %q; want %s", s, strings.Join(siteKinds, " or "))
		}
		q.Kind = s
	}
	if s := get("status"); s != "" {
		if !slices.Contains(siteStatuses, s) {
			return q, badf("unknown status %q; want one of %s", s, strings.Join(siteStatuses, ", "))
		}
		q.Status = s
	}
	if s := get("asset_type"); s != "" {
		if _, ok := voc.types[s]; !ok {
			return q, badf("unknown asset_type %q; the fleet's asset types are: %s", s, sortedValues(voc.types))
		}
		q.AssetType = s
	}
	q.Q = strings.ToLower(get("q"))
	if s := get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxLimit {
			return q, badf("limit %q: want a whole number from 1 to %d (default %d)", s, maxLimit, defaultLimit)
		}
		q.Limit = n
	}
	if s := get("offset"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return q, badf("offset %q: want a whole number from 0", s)
		}
		q.Offset = n
	}
	if s := get("cursor"); s != "" {
		if q.Offset != 0 {
			return q, badf("give either offset or cursor, not both")
		}
		b, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil || !registry.ValidSiteID(string(b)) {
			return q, badf("cursor %q is not one this API made; use the next link of the previous page", s)
		}
		q.After = string(b)
	}
	return q, nil
}

func encodeCursor(afterID string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(afterID))
}

func isDigits(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// matches applies every filter but status, which needs the live state.
func (q *siteQuery) matches(s *registry.Site) bool {
	if q.After != "" && s.ID <= q.After {
		return false
	}
	if q.Region != "" && strings.ToLower(s.Region) != q.Region {
		return false
	}
	if q.Province != "" && strings.ToLower(s.Province) != q.Province && strings.ToLower(s.ProvinceName) != q.Province {
		return false
	}
	if q.Comune != "" && strings.ToLower(s.Comune) != q.Comune && strings.ToLower(s.Name) != q.Comune {
		return false
	}
	if q.Kind != "" && string(s.Kind) != q.Kind {
		return false
	}
	if q.AssetType != "" && !slices.ContainsFunc(s.Assets, func(a *registry.Asset) bool { return a.Type == q.AssetType }) {
		return false
	}
	if q.Q != "" {
		found := false
		for _, f := range []string{s.ID, s.Name, s.Comune, s.Province, s.ProvinceName, s.Region, s.Address} {
			if strings.Contains(strings.ToLower(f), q.Q) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}
