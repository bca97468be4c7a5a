package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"
)

// Update kinds, as the stream names its events.
var updateKinds = []string{"telemetry", "reported", "status", "event", "desired", "lifecycle"}

// streamRetryAfter is the Retry-After of a stream refused by a limit.
const streamRetryAfter = 30 * time.Second

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
// proxies keep the connection open. It ends when the client goes away,
// when the client does not take a write within StreamWriteTimeout, or
// when the server shuts down. Streams are limited in total and per client
// address (429); the updates come from the hub (streamhub.go).
func (a *v1) stream(w http.ResponseWriter, r *http.Request) {
	f, err := a.parseStreamFilter(r)
	if err != nil {
		WriteError(w, CodeBadFilter, err.Error())
		return
	}
	addr := a.clientAddr(r)
	c, lerr := a.hub.join(addr, f)
	if lerr != nil {
		a.m.limited.WithLabelValues(lerr.limit).Inc()
		tooMany(w, streamRetryAfter, lerr.msg)
		return
	}
	defer a.hub.leave(c)
	rc := http.NewResponseController(w)
	// Each write gets its own deadline, replacing the server's
	// WriteTimeout, which would otherwise cut every stream after it.
	write := func(format string, args ...any) error {
		deadline := time.Time{}
		if d := a.lim.StreamWriteTimeout; d > 0 {
			deadline = time.Now().Add(d)
		}
		_ = rc.SetWriteDeadline(deadline)
		if _, err := fmt.Fprintf(w, format, args...); err != nil {
			return err
		}
		return rc.Flush()
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	err = write(": polis twin stream\n\n")
	tick := time.NewTicker(a.heartbeat)
	defer tick.Stop()
	var dropped uint64
	for err == nil {
		select {
		case <-r.Context().Done():
			return
		case <-a.closing:
			return
		case <-c.ended:
			return
		case <-tick.C:
			err = write(": heartbeat\n\n")
		case u := <-c.updates:
			if n := c.dropped.Load(); n != dropped {
				// Say so, as a comment, so that a client can tell.
				err = write(": %d updates dropped: this stream is read too slowly\n\n", n-dropped)
				dropped = n
				if err != nil {
					break
				}
			}
			b, merr := json.Marshal(u)
			if merr != nil {
				continue
			}
			kind := u.Kind
			if !slices.Contains(updateKinds, kind) {
				kind = "update" // never let a stray kind break the framing
			}
			err = write("event: %s\ndata: %s\n\n", kind, b)
		}
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		a.m.slow.Inc()
		a.log.Debug("stream client too slow: disconnected", "client", addr, "write_timeout", a.lim.StreamWriteTimeout)
	}
}
