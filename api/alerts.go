package api

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/polis-platform/polis/rules/engine"
)

// AlertStore is what the alert routes need of the rules engine; a
// *engine.Engine satisfies it.
type AlertStore interface {
	Alerts(f engine.Filter) []engine.Alert
	Get(fingerprint string) (engine.Alert, bool)
	Ack(fingerprint, user, comment string, at time.Time) (engine.Notification, error)
	Assign(fingerprint, user string, at time.Time) (engine.Notification, error)
	Silence(s engine.Silence) error
	Unsilence(id string) error
	Silences() []engine.Silence
}

var _ AlertStore = (*engine.Engine)(nil)

// silenceID is what a client-chosen silence id may be: it goes in a path.
var silenceID = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// alertStates are the values of the state filter, in engine order.
var alertStates = []string{"inactive", "pending", "firing", "resolved", "nodata"}

type ackDTO struct {
	By      string    `json:"by"`
	Comment string    `json:"comment"`
	At      time.Time `json:"at"`
}

type alertDTO struct {
	Fingerprint string            `json:"fingerprint"`
	RuleID      string            `json:"rule_id"`
	Site        string            `json:"site"`
	Asset       string            `json:"asset"`
	State       string            `json:"state"`
	Severity    string            `json:"severity"`
	Labels      map[string]string `json:"labels"`
	Summary     string            `json:"summary"`
	Value       float64           `json:"value"`
	ActiveAt    time.Time         `json:"active_at,omitzero"`
	FiredAt     time.Time         `json:"fired_at,omitzero"`
	ResolvedAt  time.Time         `json:"resolved_at,omitzero"`
	LastEval    time.Time         `json:"last_eval,omitzero"`
	Acked       *ackDTO           `json:"acked"`
	Assignee    string            `json:"assignee"`
	Flapping    bool              `json:"flapping"`
	InhibitedBy string            `json:"inhibited_by"`
	Silenced    bool              `json:"silenced"`
	Occurrence  int               `json:"occurrence"`
	Level       int               `json:"level"`
}

type alertList struct {
	Items []alertDTO `json:"items"`
}

func alertOf(a engine.Alert) alertDTO {
	d := alertDTO{Fingerprint: a.Fingerprint, RuleID: a.RuleID, Site: a.Site, Asset: a.Asset, State: a.State.String(),
		Severity: a.Severity, Labels: make(map[string]string, len(a.Labels)), Summary: a.Summary, Value: a.Value,
		ActiveAt: a.ActiveAt, FiredAt: a.FiredAt, ResolvedAt: a.ResolvedAt, LastEval: a.LastEval,
		Assignee: a.Assignee, Flapping: a.Flapping, InhibitedBy: a.InhibitedBy, Silenced: a.Silenced,
		Occurrence: a.Occurrence, Level: a.Level}
	for k, v := range a.Labels {
		d.Labels[k] = v
	}
	if a.Ack != nil {
		d.Acked = &ackDTO{By: a.Ack.By, Comment: a.Ack.Comment, At: a.Ack.At}
	}
	return d
}

type matcherDTO struct {
	Label string `json:"label"`
	Value string `json:"value"`
	Regex bool   `json:"regex"`
}

type silenceDTO struct {
	ID        string       `json:"id"`
	Matchers  []matcherDTO `json:"matchers"`
	Start     time.Time    `json:"start"`
	End       time.Time    `json:"end"`
	CreatedBy string       `json:"created_by"`
	Comment   string       `json:"comment"`
}

type silenceList struct {
	Items []silenceDTO `json:"items"`
}

func silenceOf(s engine.Silence) silenceDTO {
	d := silenceDTO{ID: s.ID, Matchers: make([]matcherDTO, len(s.Matchers)), Start: s.Start, End: s.End,
		CreatedBy: s.CreatedBy, Comment: s.Comment}
	for i, m := range s.Matchers {
		d.Matchers[i] = matcherDTO{Label: m.Label, Value: m.Value, Regex: m.Regex}
	}
	return d
}

type ackRequest struct {
	Comment string `json:"comment"`
}

type assignRequest struct {
	Assignee string `json:"assignee"`
}

type silenceRequest struct {
	ID       string       `json:"id"`
	Matchers []matcherDTO `json:"matchers"`
	Start    *time.Time   `json:"start"`
	End      time.Time    `json:"end"`
	Comment  string       `json:"comment"`
}

func (a *v1) alertRoutes() []route {
	return []route{
		{method: "GET", path: "/api/v1/alerts", h: http.HandlerFunc(a.listAlerts)},
		{method: "GET", path: "/api/v1/alerts/{fingerprint}", h: http.HandlerFunc(a.getAlert)},
		{method: "POST", path: "/api/v1/alerts/{fingerprint}/ack", h: http.HandlerFunc(a.ackAlert)},
		{method: "POST", path: "/api/v1/alerts/{fingerprint}/assign", h: http.HandlerFunc(a.assignAlert)},
		{method: "GET", path: "/api/v1/silences", h: http.HandlerFunc(a.listSilences)},
		{method: "POST", path: "/api/v1/silences", h: http.HandlerFunc(a.postSilence)},
		{method: "DELETE", path: "/api/v1/silences/{id}", h: http.HandlerFunc(a.deleteSilence)},
	}
}

func (a *v1) listAlerts(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	for k := range q {
		switch k {
		case "rule", "site", "asset", "state", "severity":
		default:
			WriteError(w, CodeBadParameter,
				fmt.Sprintf("unknown parameter %q; filter with rule, site, asset, state or severity", k))
			return
		}
	}
	f := engine.Filter{RuleID: q.Get("rule"), Site: q.Get("site"), Asset: q.Get("asset")}
	if v := q.Get("state"); v != "" {
		for _, s := range strings.Split(v, ",") {
			st, err := engine.ParseState(s)
			if err != nil {
				writeCoded(w, &Error{Code: CodeBadParameter, Allowed: alertStates,
					Message: fmt.Sprintf("state=%q: want one or more of %s, comma-separated", v, strings.Join(alertStates, ", "))})
				return
			}
			f.States = append(f.States, st)
		}
	}
	sev := q.Get("severity")
	out := alertList{Items: []alertDTO{}}
	for _, al := range a.o.Alerts.Alerts(f) {
		if sev != "" && al.Severity != sev {
			continue
		}
		out.Items = append(out.Items, alertOf(al))
	}
	writeJSON(w, http.StatusOK, out)
}

func unknownAlert(w http.ResponseWriter, fp string) {
	WriteError(w, CodeUnknownAlert,
		fmt.Sprintf("no alert %q (it may have resolved and been forgotten); list them at /api/v1/alerts", fp))
}

func (a *v1) getAlert(w http.ResponseWriter, r *http.Request) {
	fp := r.PathValue("fingerprint")
	al, ok := a.o.Alerts.Get(fp)
	if !ok {
		unknownAlert(w, fp)
		return
	}
	writeJSON(w, http.StatusOK, alertOf(al))
}

// decodeJSON reads a small JSON body (bounded by bodyLimit) into v,
// refusing unknown fields; it writes a 400 with usage (413, 408: see
// bodyError) and returns false if it cannot.
func (a *v1) decodeJSON(w http.ResponseWriter, r *http.Request, v any, usage string) bool {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		a.bodyError(w, err, usage)
		return false
	}
	return true
}

// alertChanged answers an ack or an assignment.
func (a *v1) alertChanged(w http.ResponseWriter, fp, what, user string, n engine.Notification, err error) {
	switch {
	case errors.Is(err, engine.ErrNotFound):
		unknownAlert(w, fp)
	case errors.Is(err, engine.ErrNotOpen):
		WriteError(w, CodeAlertNotOpen,
			fmt.Sprintf("%v; only pending, firing and nodata alerts can be acknowledged", err))
	case err != nil:
		a.log.Error("cannot change alert", "alert", fp, "action", what, "token", user, "err", err)
		WriteError(w, CodeInternal, err.Error())
	default:
		a.log.Info("alert changed", "alert", fp, "action", what, "token", user)
		writeJSON(w, http.StatusOK, alertOf(n.Alert))
	}
}

func (a *v1) ackAlert(w http.ResponseWriter, r *http.Request) {
	tok, ok := a.auth.check(w, r, actAlerts)
	if !ok {
		return
	}
	var req ackRequest
	if !a.decodeJSON(w, r, &req, `{"comment": "<why>"}`) {
		return
	}
	if len(req.Comment) > 500 {
		WriteError(w, CodeBadBody, "comment is over 500 bytes")
		return
	}
	fp := r.PathValue("fingerprint")
	n, err := a.o.Alerts.Ack(fp, tok.Name, req.Comment, a.o.Now())
	a.alertChanged(w, fp, "ack", tok.Name, n, err)
}

func (a *v1) assignAlert(w http.ResponseWriter, r *http.Request) {
	tok, ok := a.auth.check(w, r, actAlerts)
	if !ok {
		return
	}
	var req assignRequest
	if !a.decodeJSON(w, r, &req, `{"assignee": "<name>"} ("" to unassign)`) {
		return
	}
	if len(req.Assignee) > 100 {
		WriteError(w, CodeBadBody, "assignee is over 100 bytes")
		return
	}
	fp := r.PathValue("fingerprint")
	n, err := a.o.Alerts.Assign(fp, req.Assignee, a.o.Now())
	a.alertChanged(w, fp, "assign", tok.Name, n, err)
}

func (a *v1) listSilences(w http.ResponseWriter, _ *http.Request) {
	out := silenceList{Items: []silenceDTO{}}
	for _, s := range a.o.Alerts.Silences() {
		out.Items = append(out.Items, silenceOf(s))
	}
	writeJSON(w, http.StatusOK, out)
}

func newSilenceID() (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(b[:]), nil
}

func (a *v1) postSilence(w http.ResponseWriter, r *http.Request) {
	tok, ok := a.auth.check(w, r, actAlerts)
	if !ok {
		return
	}
	var req silenceRequest
	const usage = `{"matchers": [{"label": "site", "value": "PO-.*", "regex": true}], "start": "<RFC 3339, default now>", "end": "<RFC 3339>", "comment": "<why>"}`
	if !a.decodeJSON(w, r, &req, usage) {
		return
	}
	s := engine.Silence{ID: req.ID, End: req.End, CreatedBy: tok.Name, Comment: req.Comment, Start: a.o.Now()}
	if req.Start != nil {
		s.Start = *req.Start
	}
	if len(req.Matchers) == 0 {
		WriteError(w, CodeBadBody, "a silence needs at least one matcher; send "+usage)
		return
	}
	if req.End.IsZero() {
		WriteError(w, CodeBadBody, "a silence needs an end; send "+usage)
		return
	}
	for _, m := range req.Matchers {
		s.Matchers = append(s.Matchers, engine.Matcher{Label: m.Label, Value: m.Value, Regex: m.Regex})
	}
	if s.ID != "" && !silenceID.MatchString(s.ID) {
		WriteError(w, CodeBadBody, fmt.Sprintf("id %q: use 1 to 64 letters, digits, '.', '_' or '-', or none to get one", s.ID))
		return
	}
	if s.ID == "" {
		id, err := newSilenceID()
		if err != nil {
			WriteError(w, CodeInternal, "cannot make a silence id: "+err.Error())
			return
		}
		s.ID = id
	}
	if err := a.o.Alerts.Silence(s); err != nil {
		WriteError(w, CodeBadSilence, err.Error())
		return
	}
	a.log.Info("silence added", "silence", s.ID, "token", tok.Name, "end", s.End)
	writeJSON(w, http.StatusCreated, silenceOf(s))
}

func (a *v1) deleteSilence(w http.ResponseWriter, r *http.Request) {
	tok, ok := a.auth.check(w, r, actAlerts)
	if !ok {
		return
	}
	id := r.PathValue("id")
	err := a.o.Alerts.Unsilence(id)
	switch {
	case errors.Is(err, engine.ErrNotFound):
		WriteError(w, CodeUnknownSilence, fmt.Sprintf("no silence %q (it may have expired); list them at /api/v1/silences", id))
	case err != nil:
		a.log.Error("cannot remove silence", "silence", id, "token", tok.Name, "err", err)
		WriteError(w, CodeInternal, err.Error())
	default:
		a.log.Info("silence removed", "silence", id, "token", tok.Name)
		w.WriteHeader(http.StatusNoContent)
	}
}
