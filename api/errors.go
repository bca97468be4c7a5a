package api

import (
	"encoding/json"
	"net/http"
)

// ErrorCode is the stable, machine-readable code of an API error. Every code
// is in errorCatalogue, with its HTTP status and a default message, and in
// the Error schema of openapi.yaml (the tests check both).
type ErrorCode string

// The error codes, grouped by status.
const (
	CodeMoved ErrorCode = "moved"

	CodeBadBody      ErrorCode = "bad_body"
	CodeBadFile      ErrorCode = "bad_file"
	CodeBadFilter    ErrorCode = "bad_filter"
	CodeBadIfMatch   ErrorCode = "bad_if_match"
	CodeBadParameter ErrorCode = "bad_parameter"
	CodeBadRule      ErrorCode = "bad_rule"
	CodeBadSilence   ErrorCode = "bad_silence"
	CodeBadState     ErrorCode = "bad_state"
	CodeBadSQL       ErrorCode = "bad_sql"
	CodeSQLRefused   ErrorCode = "sql_refused"

	CodeUnauthenticated ErrorCode = "unauthenticated"
	CodeForbidden       ErrorCode = "forbidden"

	CodeNotFound       ErrorCode = "not_found"
	CodeUnknownAlert   ErrorCode = "unknown_alert"
	CodeUnknownAsset   ErrorCode = "unknown_asset"
	CodeUnknownRule    ErrorCode = "unknown_rule"
	CodeUnknownService ErrorCode = "unknown_service"
	CodeUnknownSilence ErrorCode = "unknown_silence"
	CodeUnknownSite    ErrorCode = "unknown_site"

	CodeMethodNotAllowed ErrorCode = "method_not_allowed"
	CodeRequestTimeout   ErrorCode = "request_timeout"
	CodeNotAcceptable    ErrorCode = "not_acceptable"

	CodeAlertNotOpen         ErrorCode = "alert_not_open"
	CodeRuleInFile           ErrorCode = "rule_in_file"
	CodeTransitionNotAllowed ErrorCode = "transition_not_allowed"

	CodeVersionMismatch      ErrorCode = "version_mismatch"
	CodeTooLarge             ErrorCode = "too_large"
	CodeUnsupportedMediaType ErrorCode = "unsupported_media_type"
	CodeIfMatchRequired      ErrorCode = "if_match_required"
	CodeTooManyRequests      ErrorCode = "too_many_requests"
	CodeSQLLimit             ErrorCode = "sql_limit"

	CodeInternal       ErrorCode = "internal"
	CodeBacktestFailed ErrorCode = "backtest_failed"

	CodeHistoryUnavailable ErrorCode = "history_unavailable"
	CodeNoHistory          ErrorCode = "no_history"
	CodeOwnerUnknown       ErrorCode = "owner_unknown"
	CodeRulesReadOnly      ErrorCode = "rules_read_only"
	CodeUnavailable        ErrorCode = "unavailable"
)

// errorSpec is one entry of the catalogue.
type errorSpec struct {
	Code    ErrorCode
	Status  int
	Message string // the default, when a call gives none
}

// errorCatalogue is every error the API answers: its code, its status and
// a default message. Handlers write errors only through it (WriteError,
// writeCoded), so a code always has the same status.
var errorCatalogue = []errorSpec{
	{CodeMoved, http.StatusTemporaryRedirect, "another instance holds this site; repeat the request at Location"},

	{CodeBadBody, http.StatusBadRequest, "the body is not what this route takes; see /api/v1/openapi.json"},
	{CodeBadFile, http.StatusBadRequest, "the file cannot be read; send the layout of GET /api/v1/registry/export"},
	{CodeBadFilter, http.StatusBadRequest, "a filter is wrong; see /api/v1/openapi.json for the parameters"},
	{CodeBadIfMatch, http.StatusBadRequest, `If-Match must be the ETag of GET, e.g. If-Match: "3"`},
	{CodeBadParameter, http.StatusBadRequest, "a parameter is wrong; see /api/v1/openapi.json for the parameters"},
	{CodeBadRule, http.StatusBadRequest, "the rule was refused"},
	{CodeBadSilence, http.StatusBadRequest, "the silence was refused"},
	{CodeBadState, http.StatusBadRequest, "no such lifecycle state"},
	{CodeBadSQL, http.StatusBadRequest, "ClickHouse cannot run the query; fix it as its message says"},
	{CodeSQLRefused, http.StatusBadRequest, "only SELECT, WITH, SHOW, DESCRIBE and EXPLAIN statements are run here"},

	{CodeUnauthenticated, http.StatusUnauthorized, `send a valid token as "Authorization: Bearer <token>"`},
	{CodeForbidden, http.StatusForbidden, "the token's role may not do this"},

	{CodeNotFound, http.StatusNotFound, "no such path; see /api/v1/ for the API"},
	{CodeUnknownAlert, http.StatusNotFound, "no such alert; list them at /api/v1/alerts"},
	{CodeUnknownAsset, http.StatusNotFound, "no such asset; a site's assets are listed at /api/v1/sites/{site}"},
	{CodeUnknownRule, http.StatusNotFound, "no such rule; list them at /api/v1/rules"},
	{CodeUnknownService, http.StatusNotFound, "no such service; GET /api/v1/services lists them"},
	{CodeUnknownSilence, http.StatusNotFound, "no such silence; list them at /api/v1/silences"},
	{CodeUnknownSite, http.StatusNotFound, "no such site; list them at /api/v1/sites"},

	{CodeMethodNotAllowed, http.StatusMethodNotAllowed, "this method is not served on this path; see Allow"},
	{CodeRequestTimeout, http.StatusRequestTimeout, "the request did not arrive in time; send it whole without pausing"},
	{CodeNotAcceptable, http.StatusNotAcceptable, "no format named in Accept is served here; see /api/v1/openapi.json"},

	{CodeAlertNotOpen, http.StatusConflict, "the alert is not open"},
	{CodeRuleInFile, http.StatusConflict, "the rule comes from a file of the rules directory: change the file"},
	{CodeTransitionNotAllowed, http.StatusConflict, "the asset cannot move to that lifecycle state from its current one"},

	{CodeVersionMismatch, http.StatusPreconditionFailed, "someone changed it: GET it again, review, and retry with the new ETag in If-Match"},
	{CodeTooLarge, http.StatusRequestEntityTooLarge, "the body is too large"},
	{CodeUnsupportedMediaType, http.StatusUnsupportedMediaType, "this Content-Type is not accepted here"},
	{CodeIfMatchRequired, http.StatusPreconditionRequired, "send If-Match with the ETag of GET"},
	{CodeTooManyRequests, http.StatusTooManyRequests, "over a limit of this server; retry after the seconds in Retry-After"},
	{CodeSQLLimit, http.StatusUnprocessableEntity, "the query is over a limit (rows, bytes, time); narrow it with WHERE, LIMIT or an aggregate"},

	{CodeInternal, http.StatusInternalServerError, "the server failed; retry, and report it if it persists"},
	{CodeBacktestFailed, http.StatusInternalServerError, "the backtest failed"},

	{CodeHistoryUnavailable, http.StatusServiceUnavailable, "cannot read history now; retry later"},
	{CodeNoHistory, http.StatusServiceUnavailable, "this instance has no history store to replay"},
	{CodeOwnerUnknown, http.StatusServiceUnavailable, "another instance holds this site and is not known yet; retry in a second"},
	{CodeRulesReadOnly, http.StatusServiceUnavailable, "rules cannot be changed on this instance now"},
	{CodeUnavailable, http.StatusServiceUnavailable, "a dependency is unavailable; try again"},
}

// errorSpecs indexes errorCatalogue by code.
var errorSpecs = func() map[ErrorCode]errorSpec {
	m := make(map[ErrorCode]errorSpec, len(errorCatalogue))
	for _, e := range errorCatalogue {
		m[e.Code] = e
	}
	return m
}()

// specOf returns the catalogue's entry for c. A code missing from the
// catalogue (a bug the tests catch) is answered as a 500 with its code.
func specOf(c ErrorCode) errorSpec {
	if e, ok := errorSpecs[c]; ok {
		return e
	}
	return errorSpec{Code: c, Status: http.StatusInternalServerError, Message: "unexpected error " + string(c)}
}

// Status is the HTTP status of errors with code c.
func (c ErrorCode) Status() int { return specOf(c).Status }

// Error is the JSON body of every API error.
type Error struct {
	Code    ErrorCode `json:"code"`
	Message string    `json:"message"`
	// Allowed lists what the caller may ask for instead, when the error is
	// about a choice (the lifecycle states an asset may move to).
	Allowed []string `json:"allowed,omitempty"`
}

func (e *Error) apiError() *Error { return e }

// coded is an error body: *Error, or a struct that embeds Error and adds
// fields of its own (ruleRefused's errors).
type coded interface{ apiError() *Error }

// WriteError writes an API error with code's status; msg says what went
// wrong and what to do ("" gives the catalogue's default message).
func WriteError(w http.ResponseWriter, code ErrorCode, msg string) {
	writeCoded(w, &Error{Code: code, Message: msg})
}

// writeCoded writes an error body with the status of its code, filling in
// the default message if it has none.
func writeCoded(w http.ResponseWriter, body coded) {
	e := body.apiError()
	spec := specOf(e.Code)
	if e.Message == "" {
		e.Message = spec.Message
	}
	writeJSON(w, spec.Status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false) // messages quote <token>, <n>: keep them readable
	_ = enc.Encode(v)
}
