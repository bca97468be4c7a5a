package polisds_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The fixture API's answers, shaped like the platform's (api/openapi.yaml:
// SiteList, SiteDetail, MilestoneList).
const milestonesJSON = `{"at":"2026-12-02T10:00:00Z","items":[
 {"id":"evc-installed","title":"EV chargers installed","line":"programma","count":"assets","target":5000,"current":1200,
  "expected":1500,"percent":24,"start":"2024-01-01","deadline":"2026-06-30","status":"at_risk",
  "source":{"fact":"f-12","url":"https://example.org/f12"},"by_region":{"Piemonte":300}},
 {"id":"sites-coworking","title":"Coworking spaces open","line":"spazi_per_italia","count":"sites","target":250,"current":260,
  "expected":250,"percent":104,"start":"2024-01-01","deadline":"2026-06-30","status":"achieved",
  "source":{"fact":"f-13","url":"https://example.org/f13"},"by_region":{}}]}`

type fakeSite struct {
	ID, Kind, Name, Province, Region string
	Lat, Lon                         float64
	Assets                           [][3]string // id, type, status
}

var fakeSites = []fakeSite{
	{"PO-1", "post_office", "Torino 1", "TO", "Piemonte", 45.07, 7.68,
		[][3]string{{"env-1", "env", "online"}, {"meter-1", "meter", "online"}, {"evc-1", "evc", "fault"}, {"pv-1", "pv", "online"}}},
	{"PO-2", "coworking", "Milano 2", "MI", "Lombardia", 45.46, 9.19,
		[][3]string{{"env-1", "env", "stale"}}},
	{"PO-3", "post_office", "Asti 3", "AT", "Piemonte", 44.9, 8.2, nil},
}

func (s fakeSite) summary() map[string]any {
	st := map[string]int{"unknown": 0, "online": 0, "offline": 0, "stale": 0, "fault": 0}
	types := map[string]bool{}
	for _, a := range s.Assets {
		st[a[2]]++
		types[a[1]] = true
	}
	var ts []string
	for t := range types {
		ts = append(ts, t)
	}
	sort.Strings(ts)
	if ts == nil {
		ts = []string{}
	}
	return map[string]any{"id": s.ID, "kind": s.Kind, "name": s.Name, "comune": "001272", "province": s.Province,
		"region": s.Region, "population": 1000, "lat": s.Lat, "lon": s.Lon, "asset_count": len(s.Assets),
		"asset_types": ts, "status": st}
}

// fakeAPI is the platform API's sites and milestones, on 127.0.0.1; it
// pages its site list one site at a time when limit=1, like the real one
// (next link).
type fakeAPI struct {
	*httptest.Server
	token string
}

func startAPI(t *testing.T, token string) *fakeAPI {
	t.Helper()
	a := &fakeAPI{token: token}
	a.Server = httptest.NewServer(http.HandlerFunc(a.serve))
	t.Cleanup(a.Close)
	return a
}

func (a *fakeAPI) serve(w http.ResponseWriter, r *http.Request) {
	if a.token != "" && r.Header.Get("Authorization") != "Bearer "+a.token {
		w.WriteHeader(http.StatusUnauthorized)
		w.Write([]byte(`{"error":"unauthorized","message":"bad token"}`))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	q := r.URL.Query()
	switch {
	case r.URL.Path == "/healthz":
		w.Write([]byte("ok"))
	case r.URL.Path == "/api/v1/milestones":
		w.Write([]byte(milestonesJSON))
	case r.URL.Path == "/api/v1/sites":
		if k := q.Get("kind"); k != "" && k != "post_office" && k != "coworking" {
			w.WriteHeader(http.StatusBadRequest)
			w.Write([]byte(`{"error":"bad_request","message":"kind: want post_office or coworking"}`))
			return
		}
		var items []any
		for _, s := range fakeSites {
			if (q.Get("region") != "" && !strings.EqualFold(q.Get("region"), s.Region)) ||
				(q.Get("province") != "" && !strings.EqualFold(q.Get("province"), s.Province)) ||
				(q.Get("kind") != "" && q.Get("kind") != s.Kind) {
				continue
			}
			items = append(items, s.summary())
		}
		limit, _ := strconv.Atoi(q.Get("limit"))
		if limit <= 0 {
			limit = 50
		}
		off, _ := strconv.Atoi(q.Get("offset"))
		total := len(items)
		items = items[min(off, total):min(off+limit, total)]
		if items == nil {
			items = []any{}
		}
		out := map[string]any{"total": total, "limit": limit, "offset": off, "items": items}
		if off+limit < total {
			q.Set("offset", strconv.Itoa(off+limit))
			out["next"] = "/api/v1/sites?" + q.Encode()
		}
		json.NewEncoder(w).Encode(out)
	case strings.HasPrefix(r.URL.Path, "/api/v1/sites/"):
		id := strings.TrimPrefix(r.URL.Path, "/api/v1/sites/")
		for _, s := range fakeSites {
			if s.ID != id {
				continue
			}
			out := s.summary()
			var assets []any
			for _, a := range s.Assets {
				assets = append(assets, map[string]any{"id": a[0], "type": a[1], "lifecycle": "operational", "status": a[2],
					"last_seen": time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC).Format(time.RFC3339)})
			}
			if assets == nil {
				assets = []any{}
			}
			out["assets"] = assets
			out["open_now"] = true
			out["live"] = map[string]any{"assets": len(s.Assets), "status": out["status"], "chargers": 1, "chargers_free": 0,
				"lockers": 0, "locker_free": 0, "totems": 0, "totems_up": 0, "atms": 0, "atms_up": 0, "pvs": 1,
				"pv_power_kw": 3.5, "pv_energy_today_kwh": 12.25, "temp_c": 21.5, "desks": 0, "desks_occupied": 0,
				"rooms": 0, "rooms_occupied": 0}
			json.NewEncoder(w).Encode(out)
			return
		}
		w.WriteHeader(http.StatusNotFound)
		w.Write([]byte(`{"error":"not_found","message":"no site ` + id + `"}`))
	default:
		w.WriteHeader(http.StatusNotFound)
	}
}
