package payload

import "errors"

// Code is the stable, machine-readable reason a payload was refused. It is
// the dead-letter reason, so values never change once released.
//
// This file is the one catalogue of dead-letter reasons: the decoders of
// this package set most of them, package ingest sets the rest (about the
// message rather than its payload). README.md lists every code (a test in
// package ingest checks that the two agree).
type Code string

// The reasons set by this package's decoders.
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

// The reasons set by package ingest, before or after decoding.
const (
	CodeBadTopic     Code = "bad_topic"
	CodeTooLarge     Code = "too_large"
	CodeUnknownAsset Code = "unknown_asset"
	CodeBadPayload   Code = "bad_payload"

	// Given by the storage writer to what reached Kafka but cannot be
	// stored; such a dead letter's topic is the Kafka topic.
	CodeBadRecord      Code = "bad_record"
	CodeStorageRefused Code = "storage_refused"

	// Given by an alert sink (rules/sink) to an alert change its receiver
	// refused for good; such a dead letter's topic is polis.alerts.v1.
	CodeSinkRefused Code = "sink_refused"
)

// Reason is one entry of the catalogue.
type Reason struct {
	Code Code
	// Meaning says when the code is given, for operators and device owners.
	Meaning string
	// Stage is where the code is given.
	Stage Stage
}

// Stage is the step of the data path that refuses with a code.
type Stage int

const (
	StageDecode  Stage = iota // this package's decoders
	StageIngest               // package ingest, around the decoders
	StageStorage              // the storage writer, for what ClickHouse cannot take
	StageSink                 // an alert sink, for what its receiver will not take
)

var catalogue = []Reason{
	{CodeEmpty, "the payload is empty", StageDecode},
	{CodeBadJSON, "not valid JSON or UTF-8, or JSON of the wrong shape: an unknown or repeated key, \"m\" not an object", StageDecode},
	{CodeBadSenML, "a SenML pack (RFC 8428) that breaks the format: a record that is not an object, a wrong field type, several values, an unsupported version or label", StageDecode},
	{CodeNoMetrics, "telemetry without a single value", StageDecode},
	{CodeBadMetric, "a metric name that is not snake_case ASCII of at most 64 characters, or a metric sent twice (also after unit normalisation)", StageDecode},
	{CodeNonFinite, "a value beyond float64 range, or not finite after unit conversion", StageDecode},
	{CodeNonNumeric, "a telemetry value that is neither a number nor true/false", StageDecode},
	{CodeBadTimestamp, "a timestamp that is neither RFC 3339 nor epoch milliseconds, or out of range", StageDecode},
	{CodeFuture, "a timestamp further ahead of the server clock than Limits.MaxFuture", StageDecode},
	{CodeTooOld, "a timestamp older than Limits.MaxAge, or before 1970", StageDecode},
	{CodeTooMany, "more points in one message than Limits.MaxPoints", StageDecode},
	{CodeBadUnit, "a SenML unit the platform does not know", StageDecode},
	{CodeBadStatus, "a status payload other than \"online\" or \"offline\"", StageDecode},
	{CodeBadEvent, "an event without a snake_case \"type\"", StageDecode},
	{CodeBadTopic, "a topic under polis/v1/ without a site or an asset, or of an unknown kind (not polis/v1/{site}/{asset}/{telemetry|event|state/reported|state/desired|status})", StageIngest},
	{CodeTooLarge, "a payload over ingest's Options.MaxPayload", StageIngest},
	{CodeUnknownAsset, "the topic names an asset that is not in the registry", StageIngest},
	{CodeBadPayload, "decoded, but the record could not be built or encoded (a bug: report it)", StageIngest},
	{CodeBadRecord, "a Kafka record the storage writer cannot decode: written by another producer, or a newer release; the payload is the record's value", StageStorage},
	{CodeStorageRefused, "ClickHouse refused the row for good (a value outside a column's range, say): the payload is the row as JSON, the message ClickHouse's error", StageStorage},
	{CodeSinkRefused, "an alert sink's receiver refused the alert change for good (a webhook's 4xx other than 408 and 429): the payload is the alert change, the message names the sink and gives the status and the start of the answer", StageSink},
}

// Catalogue returns every dead-letter reason with its meaning, decoders'
// first.
func Catalogue() []Reason { return append([]Reason(nil), catalogue...) }

// Codes returns every Code of the catalogue.
func Codes() []Code {
	out := make([]Code, len(catalogue))
	for i, r := range catalogue {
		out[i] = r.Code
	}
	return out
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
