package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/polis-platform/polis/rules"
	"github.com/polis-platform/polis/rules/dsl"
)

// RuleStore is what the rule routes need; *rules.Service is one.
type RuleStore interface {
	RulesInfo() ([]rules.RuleInfo, error)
	RuleInfo(id string) (rules.RuleInfo, bool)
	Versions(id string) ([]rules.Version, bool)
	Check(id string, src []byte) (*dsl.Rule, error)
	Put(ctx context.Context, id string, src []byte, by, comment string, ifVersion int) (rules.Version, error)
	Delete(ctx context.Context, id, by, comment string, ifVersion int) (rules.Version, error)
	Backtest(ctx context.Context, spec rules.BacktestSpec) (rules.BacktestResult, error)
}

var _ RuleStore = (*rules.Service)(nil)

const (
	actRules    action = "change alert rules"
	actBacktest action = "backtest rules over the history (it reads ClickHouse hard)"
)

func init() {
	allowedRoles[actRules] = []Role{RoleOperator}
	allowedRoles[actBacktest] = []Role{RoleOperator, RoleFacilityManager}
}

type ruleList struct {
	Items []rules.RuleInfo `json:"items"`
	// ReloadError is why the rules directory's last change was refused
	// (the rules before it still run); empty when it loaded.
	ReloadError string `json:"reload_error,omitempty"`
}

type versionList struct {
	Items []rules.Version `json:"items"`
}

// ruleErrorDTO is one fault of a refused rule, positioned in its text.
type ruleErrorDTO struct {
	Line    int    `json:"line"`
	Column  int    `json:"column"`
	Message string `json:"message"`
}

// ruleRefused is the Error of a rule that does not compile, with each
// fault's position.
type ruleRefused struct {
	Error
	Errors []ruleErrorDTO `json:"errors"`
}

type backtestRequest struct {
	RuleIDs []string `json:"rule_ids"`
	Rule    string   `json:"rule"` // YAML of one rule not saved yet
	From    string   `json:"from"`
	To      string   `json:"to"`
	Sites   []string `json:"sites"`
	Step    string   `json:"step"`
}

// maxBacktestSpan bounds a backtest's range: longer replays are for the
// CLI; backtestTimeout bounds its run (its answer may take that long, so
// its write deadline is at least that, whatever BulkTimeout says).
const (
	maxBacktestSpan = 31 * 24 * time.Hour
	backtestTimeout = 2 * time.Minute
)

func (a *v1) ruleRoutes() []route {
	return []route{
		{method: "GET", path: "/api/v1/rules", h: http.HandlerFunc(a.listRules)},
		{method: "POST", path: "/api/v1/rules/check", h: http.HandlerFunc(a.checkRule)},
		{method: "POST", path: "/api/v1/rules/backtest", h: http.HandlerFunc(a.backtest)},
		{method: "GET", path: "/api/v1/rules/{id}", h: http.HandlerFunc(a.getRule)},
		{method: "PUT", path: "/api/v1/rules/{id}", h: http.HandlerFunc(a.putRule)},
		{method: "DELETE", path: "/api/v1/rules/{id}", h: http.HandlerFunc(a.deleteRule)},
		{method: "GET", path: "/api/v1/rules/{id}/versions", h: http.HandlerFunc(a.ruleVersions)},
	}
}

func (a *v1) listRules(w http.ResponseWriter, _ *http.Request) {
	items, err := a.o.Rules.RulesInfo()
	out := ruleList{Items: items}
	if out.Items == nil {
		out.Items = []rules.RuleInfo{}
	}
	if err != nil {
		out.ReloadError = err.Error()
	}
	writeJSON(w, http.StatusOK, out)
}

func unknownRule(w http.ResponseWriter, id string) {
	WriteError(w, CodeUnknownRule, fmt.Sprintf("no rule %q; list them at /api/v1/rules", id))
}

func (a *v1) getRule(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	in, ok := a.o.Rules.RuleInfo(id)
	if !ok {
		unknownRule(w, id)
		return
	}
	w.Header().Set("ETag", strconv.Quote(strconv.Itoa(in.Version)))
	writeJSON(w, http.StatusOK, in)
}

func (a *v1) ruleVersions(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	vs, ok := a.o.Rules.Versions(id)
	if !ok {
		unknownRule(w, id)
		return
	}
	writeJSON(w, http.StatusOK, versionList{Items: vs})
}

// readRule reads a rule's text: YAML or JSON (JSON is YAML), bounded by
// bodyLimit.
func (a *v1) readRule(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		a.bodyError(w, err, "the rule as YAML or JSON")
		return nil, false
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		WriteError(w, CodeBadBody,
			"send the rule as YAML (Content-Type: application/yaml) or JSON, with the keys of a rule file: id, expr, severity, ...")
		return nil, false
	}
	return b, true
}

// refuseRule answers a rule that does not compile, with every fault's
// position in the text that was sent.
func refuseRule(w http.ResponseWriter, err error) {
	var el dsl.ErrorList
	if !errors.As(err, &el) {
		WriteError(w, CodeBadRule, err.Error())
		return
	}
	out := &ruleRefused{Error: Error{Code: CodeBadRule}, Errors: make([]ruleErrorDTO, len(el))}
	msgs := make([]string, len(el))
	for i, e := range el {
		msg := e.Msg
		out.Errors[i] = ruleErrorDTO{Line: e.Pos.Line, Column: e.Pos.Col, Message: msg}
		msgs[i] = fmt.Sprintf("line %d, column %d: %s", e.Pos.Line, e.Pos.Col, msg)
	}
	out.Message = "the rule was refused: " + strings.Join(msgs, "; ")
	writeCoded(w, out)
}

func (a *v1) checkRule(w http.ResponseWriter, r *http.Request) {
	src, ok := a.readRule(w, r)
	if !ok {
		return
	}
	rule, err := a.o.Rules.Check("", src)
	if err != nil {
		refuseRule(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": rule.ID, "metrics": rule.Uses.Metrics, "clock": rule.Uses.Timer})
}

// ifVersion reads If-Match: "N" (the ETag of GET), * or nothing (-1: any).
func ifVersion(w http.ResponseWriter, r *http.Request) (int, bool) {
	im := strings.TrimSpace(r.Header.Get("If-Match"))
	if im == "" || im == "*" {
		return -1, true
	}
	n, err := parseIfMatch(im)
	if err != nil {
		WriteError(w, CodeBadIfMatch, fmt.Sprintf("If-Match %q: send the ETag of GET /api/v1/rules/{id}, e.g. If-Match: \"3\" (\"0\": the rule must not exist yet)", im))
		return 0, false
	}
	return int(n), true
}

func (a *v1) ruleWritten(w http.ResponseWriter, id, user string, v rules.Version, err error) {
	switch {
	case err == nil:
		a.log.Info("rule changed", "rule", id, "version", v.Version, "deleted", v.Deleted, "token", user)
		w.Header().Set("ETag", strconv.Quote(strconv.Itoa(v.Version)))
		writeJSON(w, http.StatusOK, v)
	case errors.Is(err, rules.ErrNotFound):
		unknownRule(w, id)
	case errors.Is(err, rules.ErrFileRule):
		WriteError(w, CodeRuleInFile, fmt.Sprintf("rule %q: %v", id, err))
	case errors.Is(err, rules.ErrConflict):
		WriteError(w, CodeVersionMismatch, err.Error())
	case errors.Is(err, rules.ErrReadOnly):
		WriteError(w, CodeRulesReadOnly, err.Error())
	case errors.Is(err, rules.ErrIDChanged):
		WriteError(w, CodeBadRule, err.Error())
	default:
		var el dsl.ErrorList
		if errors.As(err, &el) {
			refuseRule(w, err)
			return
		}
		a.log.Error("cannot save rule", "rule", id, "err", err)
		WriteError(w, CodeUnavailable, err.Error()+"; try again")
	}
}

func (a *v1) putRule(w http.ResponseWriter, r *http.Request) {
	tok, ok := a.auth.check(w, r, actRules)
	if !ok {
		return
	}
	ver, ok := ifVersion(w, r)
	if !ok {
		return
	}
	src, ok := a.readRule(w, r)
	if !ok {
		return
	}
	id := r.PathValue("id")
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	v, err := a.o.Rules.Put(ctx, id, src, tok.Name, r.URL.Query().Get("comment"), ver)
	a.ruleWritten(w, id, tok.Name, v, err)
}

func (a *v1) deleteRule(w http.ResponseWriter, r *http.Request) {
	tok, ok := a.auth.check(w, r, actRules)
	if !ok {
		return
	}
	ver, ok := ifVersion(w, r)
	if !ok {
		return
	}
	id := r.PathValue("id")
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	v, err := a.o.Rules.Delete(ctx, id, tok.Name, r.URL.Query().Get("comment"), ver)
	a.ruleWritten(w, id, tok.Name, v, err)
}

func (a *v1) backtest(w http.ResponseWriter, r *http.Request) {
	if _, ok := a.auth.check(w, r, actBacktest); !ok {
		return
	}
	a.bulk(w, false, backtestTimeout+10*time.Second)
	var req backtestRequest
	usage := `{"rule_ids": ["atm_cash_low"], "from": "2026-11-01T00:00:00Z", "to": "2026-11-02T00:00:00Z"} (or "rule": "<YAML of a rule>")`
	if !a.decodeJSON(w, r, &req, usage) {
		return
	}
	var spec rules.BacktestSpec
	var err error
	bad := func(msg string) { WriteError(w, CodeBadBody, msg+"; send "+usage) }
	if spec.From, err = time.Parse(time.RFC3339, req.From); err != nil {
		bad(fmt.Sprintf("from %q is not an RFC 3339 time", req.From))
		return
	}
	if spec.To, err = time.Parse(time.RFC3339, req.To); err != nil {
		bad(fmt.Sprintf("to %q is not an RFC 3339 time", req.To))
		return
	}
	switch {
	case !spec.From.Before(spec.To):
		bad("from must be before to")
		return
	case spec.To.Sub(spec.From) > maxBacktestSpan:
		bad(fmt.Sprintf("the range is over %d days; replay longer ranges with `polis rules backtest`", int(maxBacktestSpan.Hours()/24)))
		return
	case len(req.RuleIDs) == 0 && req.Rule == "":
		bad("name rules in rule_ids or send one in rule")
		return
	}
	if req.Step != "" {
		if spec.Step, err = dsl.ParseDuration(req.Step); err != nil || spec.Step < time.Second {
			bad(fmt.Sprintf("step %q is not a duration of 1s or more", req.Step))
			return
		}
	}
	spec.RuleIDs, spec.Source, spec.Sites = req.RuleIDs, []byte(req.Rule), req.Sites
	ctx, cancel := context.WithTimeout(r.Context(), backtestTimeout)
	defer cancel()
	res, err := a.o.Rules.Backtest(ctx, spec)
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, res)
	case errors.Is(err, rules.ErrNotFound):
		WriteError(w, CodeUnknownRule, err.Error()+"; list the rules at /api/v1/rules")
	case errors.Is(err, rules.ErrNoHistory):
		WriteError(w, CodeNoHistory, err.Error())
	default:
		var el dsl.ErrorList
		if errors.As(err, &el) {
			refuseRule(w, err)
			return
		}
		a.log.Error("backtest failed", "err", err)
		WriteError(w, CodeBacktestFailed, err.Error())
	}
}
