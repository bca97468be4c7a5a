// Package payload decodes and validates the MQTT payloads of Polis devices:
// telemetry (the Polis JSON format or SenML, RFC 8428), events, reported
// state and status. It is pure: no I/O, no clock (the arrival time is a
// parameter), no logging, safe for concurrent use. Every failure is an
// *Error whose Code is the dead-letter reason.
//
// Decisions a device owner may need to know:
//
//   - Metric names match ^[a-z][a-z0-9_]{0,63}$ and by convention end with
//     their unit (temp_c, power_kw). The suffix is not checked against a
//     list, because state metrics such as door_open or screen_on have none.
//   - Unit suffixes are normalised: _w -> _kw and _wh -> _kwh (/1000),
//     _f -> _c, _k -> _c. _mw and _mwh are ambiguous (milli or mega) and are
//     left as sent.
//   - Values are finite numbers; true and false are accepted as 1 and 0.
//     Strings, null and numbers beyond float64 (1e999) are refused.
//   - Timestamps are RFC 3339 strings or numbers: below 1e11 epoch seconds,
//     otherwise epoch milliseconds (1e11 ms is 1973, 1e11 s is the year 5138).
//     Fractional numbers round to the nearest millisecond; RFC 3339 fractions
//     below a millisecond are truncated.
//   - In a JSON telemetry message, unknown top-level keys and repeated metrics
//     (also after normalisation, e.g. temp_f with temp_c) are refused rather
//     than dropped, so that a typo shows up in the dead-letter topic.
//   - A payload that is not valid JSON always gets bad_json, even when an
//     earlier part is wrong in another way.
//
// Telemetry is decoded by a small JSON scanner rather than encoding/json
// (about ten times faster with one allocation per point; see scan.go). The
// tests keep an encoding/json decoder as the oracle it is fuzzed against.
package payload
