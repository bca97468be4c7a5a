package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/polis-platform/polis/storage"
	"github.com/polis-platform/polis/twin/lifecycle"
	"github.com/polis-platform/polis/twin/state"
)

func (a *v1) listSites(w http.ResponseWriter, r *http.Request) {
	sites := a.o.Fleet.Sites()
	q, err := parseSiteQuery(r.URL.Query(), fleetVocab(sites))
	if err != nil {
		WriteError(w, CodeBadFilter, err.Error())
		return
	}
	now := a.o.Now()
	out := siteList{Limit: q.Limit, Offset: q.Offset, Items: []siteListItem{}}
	remote := 0
	var last string
	for _, s := range sites { // ordered by id
		if !q.matches(s) {
			continue
		}
		// The live state is read only where needed: for the status
		// filter, and for the sites on the page.
		var v state.SiteView
		local, read := true, false
		if q.Status != "" {
			v, local, _ = a.o.Live.SiteState(s.ID, now)
			read = true
			if local && v.ByStatus[statusIndex(q.Status)] == 0 {
				continue
			}
			if !local {
				remote++
			}
		}
		out.Total++
		if out.Total <= q.Offset || len(out.Items) >= q.Limit {
			continue
		}
		if !read {
			v, local, _ = a.o.Live.SiteState(s.ID, now)
		}
		it := siteListItem{siteSummary: summary(s), Remote: !local}
		if local {
			it.Status = statusCounts(v)
		}
		out.Items = append(out.Items, it)
		last = s.ID
	}
	if remote > 0 {
		out.Notes = append(out.Notes, fmt.Sprintf(
			"%d sites are served by other instances; the status filter was not applied to them (they are listed with \"remote\": true)", remote))
	}
	if q.After != "" {
		out.Notes = append(out.Notes, "total counts the sites after the cursor")
	}
	if len(out.Items) == q.Limit && out.Total > q.Offset+q.Limit {
		next := url.Values{}
		for k, v := range r.URL.Query() {
			if k != "offset" && k != "cursor" {
				next[k] = v
			}
		}
		next.Set("cursor", encodeCursor(last))
		out.Next = "/api/v1/sites?" + next.Encode()
	}
	writeJSON(w, http.StatusOK, out)
}

// statusIndex returns the state.Status named s (one of siteStatuses).
func statusIndex(s string) state.Status {
	for i := range state.Status(len(siteStatuses)) {
		if i.String() == s {
			return i
		}
	}
	return state.StatusUnknown
}

var propNameRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]{0,63}$`)

// parseIfMatch reads a strong ETag "N" made by etag. W/ tags cannot match
// (RFC 9110: If-Match uses strong comparison).
func parseIfMatch(h string) (uint64, error) {
	h = strings.TrimSpace(h)
	if len(h) < 3 || h[0] != '"' || h[len(h)-1] != '"' {
		return 0, badf("If-Match %q: send the ETag of GET on the asset, e.g. If-Match: \"3\"", h)
	}
	n, err := strconv.ParseUint(h[1:len(h)-1], 10, 64)
	if err != nil {
		return 0, badf("If-Match %q: send the ETag of GET on the asset, e.g. If-Match: \"3\"", h)
	}
	return n, nil
}

func (a *v1) patchDesired(w http.ResponseWriter, r *http.Request) {
	tok, ok := a.auth.check(w, r, actDesired)
	if !ok {
		return
	}
	s, as, ok := a.asset(w, r)
	if !ok {
		return
	}
	im := r.Header.Get("If-Match")
	if im == "" {
		WriteError(w, CodeIfMatchRequired,
			fmt.Sprintf("send If-Match with the ETag of GET /api/v1/sites/%s/assets/%s, so that two people cannot overwrite each other's change", s.ID, as.ID))
		return
	}
	// If-Match: * (RFC 9110: any current representation) writes
	// unconditionally, for scripts that mean to overwrite.
	overwrite := strings.TrimSpace(im) == "*"
	var ver uint64
	if !overwrite {
		var err error
		if ver, err = parseIfMatch(im); err != nil {
			WriteError(w, CodeBadIfMatch, err.Error())
			return
		}
	}
	body, err := io.ReadAll(r.Body) // bounded by bodyLimit
	if err != nil {
		a.bodyError(w, err, `a JSON object of desired properties`)
		return
	}
	var set map[string]json.RawMessage
	if err := json.Unmarshal(body, &set); err != nil || set == nil {
		WriteError(w, CodeBadBody,
			`the body must be a JSON object of desired properties, e.g. {"setpoint_c": 21, "screen_on": true}; null removes a property`)
		return
	}
	if len(set) == 0 {
		WriteError(w, CodeBadBody, "the body names no property to change")
		return
	}
	for n := range set {
		if !propNameRe.MatchString(n) {
			WriteError(w, CodeBadBody,
				fmt.Sprintf("property name %q: use letters, digits, _ . - (first a letter or _), at most 64", n))
			return
		}
	}
	now := a.o.Now()
	v, local, owner := a.o.Live.AssetState(s.ID, as.ID, now)
	if !local {
		elsewhere(w, r, s.ID, owner)
		return
	}
	// If-Match "0" means "nobody has set anything yet": Live checks it
	// like any version, atomically, so two writers racing on a fresh asset
	// cannot both win; "*" overwrites whatever is there.
	nv, local, owner, err := a.o.Live.SetDesired(s.ID, as.ID, set, ver, overwrite, now)
	switch {
	case !local:
		elsewhere(w, r, s.ID, owner)
		return
	case errors.Is(err, state.ErrVersionMismatch):
		preconditionFailed(w, s.ID, as.ID, nv, ver)
		return
	case errors.Is(err, state.ErrUnknownAsset):
		WriteError(w, CodeUnknownAsset, fmt.Sprintf("the twin does not hold %s/%s yet; retry once it has loaded the fleet", s.ID, as.ID))
		return
	case err != nil:
		a.log.Error("cannot set desired state", "site", s.ID, "asset", as.ID, "token", tok.Name, "err", err)
		WriteError(w, CodeInternal, fmt.Sprintf("cannot set desired state of %s/%s: %v", s.ID, as.ID, err))
		return
	}
	a.log.Info("desired state set", "site", s.ID, "asset", as.ID, "token", tok.Name, "version", nv, "properties", len(set))
	v, _, _ = a.o.Live.AssetState(s.ID, as.ID, now)
	delta := v.Delta
	if delta == nil {
		delta = map[string]json.RawMessage{}
	}
	w.Header().Set("ETag", etag(nv))
	writeJSON(w, http.StatusOK, desiredResult{Site: s.ID, Asset: as.ID, DesiredVersion: nv, Desired: props(v.Desired), Delta: delta})
}

func preconditionFailed(w http.ResponseWriter, site, asset string, have, want uint64) {
	w.Header().Set("ETag", etag(have))
	WriteError(w, CodeVersionMismatch,
		fmt.Sprintf("the desired state of %s/%s is at version %d, not %d: someone changed it; GET the asset, review, and retry with If-Match: %s",
			site, asset, have, want, etag(have)))
}

type transitionRequest struct {
	To    string `json:"to"`
	Cause string `json:"cause"`
}

func (a *v1) postLifecycle(w http.ResponseWriter, r *http.Request) {
	tok, ok := a.auth.check(w, r, actLifecycle)
	if !ok {
		return
	}
	s, as, ok := a.asset(w, r)
	if !ok {
		return
	}
	var req transitionRequest
	dec := json.NewDecoder(r.Body) // bounded by bodyLimit
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		if isBodyLimit(err) {
			a.bodyError(w, err, "")
			return
		}
		WriteError(w, CodeBadBody,
			`the body must be {"to": "<state>", "cause": "<why>"}, e.g. {"to": "operational", "cause": "repaired by supplier"}`)
		return
	}
	to, err := lifecycle.ParseState(req.To)
	if err != nil {
		WriteError(w, CodeBadState, err.Error())
		return
	}
	if len(req.Cause) > 200 {
		WriteError(w, CodeBadBody, "cause is over 200 bytes")
		return
	}
	if _, local, owner := a.o.Live.AssetState(s.ID, as.ID, a.o.Now()); !local {
		elsewhere(w, r, s.ID, owner)
		return
	}
	cause := req.Cause
	if cause == "" {
		cause = lifecycle.CauseAPI
	}
	ev, err := a.o.Live.Transition(s.ID, as.ID, to, tok.Name, cause, a.o.Now())
	var te *lifecycle.TransitionError
	switch {
	case errors.As(err, &te):
		allowed := make([]string, len(te.Allowed))
		for i, st := range te.Allowed {
			allowed[i] = string(st)
		}
		writeCoded(w, &Error{Code: CodeTransitionNotAllowed, Message: te.Error(), Allowed: allowed})
		return
	case errors.Is(err, lifecycle.ErrUnknownAsset):
		WriteError(w, CodeUnknownAsset, fmt.Sprintf("the lifecycle tracker does not hold %s/%s yet", s.ID, as.ID))
		return
	case err != nil:
		a.log.Error("cannot change lifecycle", "site", s.ID, "asset", as.ID, "token", tok.Name, "err", err)
		WriteError(w, CodeInternal, fmt.Sprintf("cannot change lifecycle of %s/%s: %v", s.ID, as.ID, err))
		return
	}
	a.log.Info("lifecycle changed", "site", s.ID, "asset", as.ID, "token", tok.Name, "from", ev.From, "to", ev.To)
	writeJSON(w, http.StatusOK, ev)
}

// History spans and metric names.
const maxHistorySpan = 400 * 24 * time.Hour

var metricRe = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)

func parseTime(name, s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.UnixMilli(ms).UTC(), nil
	}
	return time.Time{}, badf("%s %q: want RFC 3339 (2026-01-02T15:04:05Z) or Unix milliseconds", name, s)
}

func (a *v1) history(w http.ResponseWriter, r *http.Request) {
	s, as, ok := a.asset(w, r)
	if !ok {
		return
	}
	qv := r.URL.Query()
	for k := range qv {
		switch k {
		case "metric", "from", "to", "step":
		default:
			WriteError(w, CodeBadFilter, fmt.Sprintf("unknown parameter %q; history takes metric, from, to, step", k))
			return
		}
	}
	q := HistoryQuery{Site: s.ID, Asset: as.ID, Metric: qv.Get("metric")}
	if !metricRe.MatchString(q.Metric) {
		WriteError(w, CodeBadFilter,
			fmt.Sprintf("metric %q: give a metric name such as temp_c or power_kw (snake_case with its unit)", q.Metric))
		return
	}
	q.To = a.o.Now()
	if s := qv.Get("to"); s != "" {
		t, err := parseTime("to", s)
		if err != nil {
			WriteError(w, CodeBadFilter, err.Error())
			return
		}
		q.To = t
	}
	q.From = q.To.Add(-time.Hour)
	if s := qv.Get("from"); s != "" {
		t, err := parseTime("from", s)
		if err != nil {
			WriteError(w, CodeBadFilter, err.Error())
			return
		}
		q.From = t
	}
	if !q.From.Before(q.To) {
		WriteError(w, CodeBadFilter, "from must be before to")
		return
	}
	if q.To.Sub(q.From) > maxHistorySpan {
		WriteError(w, CodeBadFilter, fmt.Sprintf("the span is over %d days; ask for less", int(maxHistorySpan.Hours()/24)))
		return
	}
	if s := qv.Get("step"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 || d > q.To.Sub(q.From) {
			WriteError(w, CodeBadFilter,
				fmt.Sprintf("step %q: want a positive duration no longer than the span, e.g. 1m, 15m, 1h", s))
			return
		}
		q.Step = d
	}
	if a.o.History == nil {
		WriteError(w, CodeHistoryUnavailable, "this instance has no history store configured")
		return
	}
	res, err := a.o.History.History(r.Context(), q)
	if err != nil {
		a.log.Warn("cannot read history", "site", s.ID, "asset", as.ID, "metric", q.Metric, "err", err)
		WriteError(w, CodeHistoryUnavailable, "cannot read history now (the time-series store did not answer); retry later")
		return
	}
	out := historyDTO{Site: s.ID, Asset: as.ID, Metric: q.Metric, From: q.From.UTC(), To: q.To.UTC(),
		Resolution: res.Resolution, Points: make([]historyPoint, len(res.Points))}
	if q.Step > 0 {
		out.Step = q.Step.String()
	}
	for i, p := range res.Points {
		out.Points[i] = historyPoint{TS: p.TS.UTC(), Value: p.Value, Min: p.Min, Max: p.Max, Count: p.Count}
	}
	writeJSON(w, http.StatusOK, out)
}

// Resolutions of HistoryResult, and the rule that picks one (storage's).
const (
	ResolutionRaw    = storage.ResolutionRaw
	ResolutionMinute = storage.ResolutionMinute
	ResolutionHour   = storage.ResolutionHour
)

// ChooseResolution is storage.ChooseResolution.
func ChooseResolution(from, to time.Time, step time.Duration) string {
	return storage.ChooseResolution(from, to, step)
}
