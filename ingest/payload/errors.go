package payload

import "errors"

// Code is the stable, machine-readable reason a payload was refused. It is
// the dead-letter reason, so values never change once released.
type Code string

const (
	CodeEmpty        Code = "empty"
	CodeBadJSON      Code = "bad_json"
	CodeBadSenML     Code = "bad_senml"
	CodeNoMetrics    Code = "no_metrics"
	CodeBadMetric    Code = "bad_metric_name"
	CodeNonFinite    Code = "non_finite"
	CodeNonNumeric   Code = "non_numeric"
	CodeBadTimestamp Code = "bad_timestamp"
	CodeFuture       Code = "future_timestamp"
	CodeTooOld       Code = "too_old"
	CodeTooMany      Code = "too_many_points"
	CodeBadUnit      Code = "bad_unit"
	CodeBadStatus    Code = "bad_status"
	CodeBadEvent     Code = "bad_event"
)

// Codes returns every Code, for catalogues and the uniqueness test.
func Codes() []Code {
	return []Code{
		CodeEmpty, CodeBadJSON, CodeBadSenML, CodeNoMetrics, CodeBadMetric,
		CodeNonFinite, CodeNonNumeric, CodeBadTimestamp, CodeFuture, CodeTooOld,
		CodeTooMany, CodeBadUnit, CodeBadStatus, CodeBadEvent,
	}
}

// Error is every decode and validation failure of this package.
type Error struct {
	Code Code
	Msg  string // for the device owner: what is wrong and how to fix it
}

func (e *Error) Error() string { return string(e.Code) + ": " + e.Msg }

// Is makes errors.Is(err, &Error{Code: c}) match on the code alone, so
// callers can branch on a reason without comparing messages.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code && (t.Msg == "" || t.Msg == e.Msg)
}

// CodeOf returns the Code of a payload error anywhere in err's chain, or "".
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

func fail(c Code, msg string) *Error { return &Error{Code: c, Msg: msg} }
