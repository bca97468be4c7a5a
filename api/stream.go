package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Update kinds, as the stream names its events.
var updateKinds = []string{"telemetry", "reported", "status", "event", "desired", "lifecycle"}

// streamBuffer is how many updates a stream client may lag behind before
// it loses some (the Live implementation counts the losses).
const streamBuffer = 256

type streamFilter struct {
	sites, regions, types, kinds []string // empty: any
}

// list splits a comma-separated parameter.
func list(v string) []string {
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func (a *v1) parseStreamFilter(r *http.Request) (streamFilter, error) {
	var f streamFilter
	qv := r.URL.Query()
	for k := range qv {
		switch k {
		case "site", "region", "asset_type", "kind":
		default:
			return f, badf("unknown parameter %q; the stream takes site, region, asset_type and kind (comma-separated lists)", k)
		}
	}
	sites := a.o.Fleet.Sites()
	voc := fleetVocab(sites)
	for _, s := range list(qv.Get("site")) {
		if _, ok := a.o.Fleet.Site(s); !ok {
			return f, badf("unknown site %q; list sites at /api/v1/sites", s)
		}
		f.sites = append(f.sites, s)
	}
	for _, s := range list(qv.Get("region")) {
		if _, ok := voc.regions[strings.ToLower(s)]; !ok {
			return f, badf("unknown region %q; the fleet's regions are: %s", s, sortedValues(voc.regions))
		}
		f.regions = append(f.regions, strings.ToLower(s))
	}
	for _, s := range list(qv.Get("asset_type")) {
		if _, ok := voc.types[s]; !ok {
			return f, badf("unknown asset_type %q; the fleet's asset types are: %s", s, sortedValues(voc.types))
		}
		f.types = append(f.types, s)
	}
	for _, s := range list(qv.Get("kind")) {
		if !slices.Contains(updateKinds, s) {
			return f, badf("unknown kind %q; want one of %s", s, strings.Join(updateKinds, ", "))
		}
		f.kinds = append(f.kinds, s)
	}
	return f, nil
}

func (f *streamFilter) match(u *Update) bool {
	return (len(f.sites) == 0 || slices.Contains(f.sites, u.Site)) &&
		(len(f.regions) == 0 || slices.Contains(f.regions, strings.ToLower(u.Region))) &&
		(len(f.types) == 0 || slices.Contains(f.types, u.AssetType)) &&
		(len(f.kinds) == 0 || slices.Contains(f.kinds, u.Kind))
}

// stream sends twin changes as Server-Sent Events: "event: <kind>" and
// "data: <Update as JSON>", with a comment line as heartbeat so that
// proxies keep the connection open. It ends when the client goes away.
func (a *v1) stream(w http.ResponseWriter, r *http.Request) {
	f, err := a.parseStreamFilter(r)
	if err != nil {
		WriteError(w, CodeBadFilter, err.Error())
		return
	}
	rc := http.NewResponseController(w)
	updates, cancel := a.o.Live.Subscribe(streamBuffer)
	defer cancel()
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if _, err := fmt.Fprint(w, ": polis twin stream\n\n"); err != nil {
		return
	}
	if err := rc.Flush(); err != nil {
		return
	}
	tick := time.NewTicker(a.heartbeat)
	defer tick.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-a.closing:
			return
		case <-tick.C:
			if _, err := fmt.Fprint(w, ": heartbeat\n\n"); err != nil {
				return
			}
		case u, ok := <-updates:
			if !ok {
				return
			}
			if !f.match(&u) {
				continue
			}
			b, err := json.Marshal(u)
			if err != nil {
				continue
			}
			kind := u.Kind
			if !slices.Contains(updateKinds, kind) {
				kind = "update" // never let a stray kind break the framing
			}
			if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", kind, b); err != nil {
				return
			}
		}
		if err := rc.Flush(); err != nil {
			return
		}
	}
}
