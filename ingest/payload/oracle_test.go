package payload

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"time"

	"github.com/polis-platform/polis/ingest/record"
)

// stdDecodeTelemetry is DecodeTelemetry built on encoding/json (Token
// streaming), the first implementation: the baseline the scanner was measured
// against and the oracle FuzzDecodeTelemetry compares it with. It shares the
// resolution code (points, senmlRecord, names), so it checks the reading of
// JSON, not the semantics, which the table tests cover.
func stdDecodeTelemetry(dst []record.Point, b []byte, now time.Time, lim Limits) ([]record.Point, error) {
	b = trimSpace(b)
	if len(b) == 0 {
		return dst, fail(CodeEmpty, "empty telemetry payload")
	}
	p := points{w: newWindow(now, lim), dst: dst, start: len(dst)}
	var err *Error
	switch b[0] {
	case '{':
		err = stdJSONTelemetry(&p, b)
	case '[':
		err = stdSenML(&p, b)
	default:
		err = fail(CodeBadJSON, "not an object or array")
	}
	if err != nil {
		return dst[:p.start], err
	}
	return p.dst, nil
}

func stdSyntax(b []byte) *Error {
	var raw json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return fail(CodeBadJSON, "invalid JSON: "+err.Error())
	}
	return nil
}

// stdNumber parses a json.Number; 1e999 and the like are out of float64 range.
func stdNumber(n json.Number) (float64, bool) {
	v, err := strconv.ParseFloat(string(n), 64)
	return v, err == nil && !math.IsInf(v, 0)
}

func stdDecoder(b []byte) *json.Decoder {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	return d
}

func stdJSONTelemetry(p *points, b []byte) *Error {
	if err := stdSyntax(b); err != nil {
		return err
	}
	d := stdDecoder(b)
	d.Token() // {
	ts, haveTS, haveM := p.w.now, false, false
	for d.More() {
		t, _ := d.Token()
		key := t.(string)
		switch key {
		case "ts":
			if haveTS {
				return fail(CodeBadJSON, `"ts" appears twice`)
			}
			haveTS = true
			v, _ := d.Token()
			var err *Error
			switch v := v.(type) {
			case nil:
				ts = p.w.now
			case string:
				ts, err = p.w.rfc3339(v, "ts")
			case json.Number:
				f, ok := stdNumber(v)
				if !ok {
					return fail(CodeBadTimestamp, "ts "+string(v)+" is out of range")
				}
				ts, err = p.w.epochNumber(f, "ts")
			default:
				return fail(CodeBadTimestamp, "ts must be an RFC 3339 string or epoch milliseconds")
			}
			if err != nil {
				return err
			}
		case "m":
			if haveM {
				return fail(CodeBadJSON, `"m" appears twice`)
			}
			haveM = true
			t, _ := d.Token()
			if t == nil {
				continue
			}
			if t != json.Delim('{') {
				return fail(CodeBadJSON, `"m" must be an object of metric names to numbers, e.g. {"temp_c":21.5}`)
			}
			for d.More() {
				t, _ := d.Token()
				key := t.(string)
				name, c, err := jsonMetric([]byte(key))
				if err != nil {
					return err
				}
				var v float64
				switch t, _ := d.Token(); t := t.(type) {
				case json.Number:
					f, ok := stdNumber(t)
					if !ok {
						return fail(CodeNonFinite, "metric "+strconv.Quote(key)+": value "+clip(string(t))+" is out of float64 range")
					}
					v = f
				case bool:
					v = boolValue(t)
				default:
					return fail(CodeNonNumeric, "metric "+strconv.Quote(key)+": value must be a number (or true/false)")
				}
				if p.duplicate(name) {
					return fail(CodeBadMetric, "metric "+strconv.Quote(key)+" appears twice (as "+name+"); send one value per metric")
				}
				if err := p.add(name, 0, v, c); err != nil {
					err.Msg = "metric " + strconv.Quote(key) + ": " + err.Msg
					return err
				}
			}
			d.Token() // }
		default:
			return fail(CodeBadJSON, "unknown key "+strconv.Quote(clip(key))+`; telemetry has only "ts" and "m"`)
		}
	}
	if p.n() == 0 {
		return fail(CodeNoMetrics, `no metrics: "m" is missing or empty`)
	}
	p.setTS(ts)
	return nil
}

func stdSenML(p *points, b []byte) *Error {
	if err := stdSyntax(b); err != nil {
		return err
	}
	d := stdDecoder(b)
	d.Token() // [
	var st senmlState
	for i := 0; d.More(); i++ {
		if t, _ := d.Token(); t != json.Delim('{') {
			return fail(CodeBadSenML, senmlWhere(i)+" is not an object; SenML is an array of records like {\"n\":\"temp\",\"u\":\"Cel\",\"v\":21.5}")
		}
		var r senmlRec
		for d.More() {
			t, _ := d.Token()
			key := t.(string)
			f := senmlLabel(key)
			if f == 0 {
				if len(key) > 0 && key[len(key)-1] == '_' {
					return senmlMustUnderstand(i, key)
				}
				var skip json.RawMessage
				d.Decode(&skip)
				continue
			}
			if r.has&f != 0 {
				return senmlDupError(i, key)
			}
			r.has |= f
			tok, _ := d.Token()
			switch tok := tok.(type) {
			case json.Number:
				if f&fNumeric == 0 {
					return senmlTypeError(i, f)
				}
				v, ok := stdNumber(tok)
				if !ok {
					return senmlRangeError(i, f)
				}
				r.setNum(f, v)
			case string:
				if f&fString == 0 {
					return senmlTypeError(i, f)
				}
				r.setStr(f, []byte(tok))
			case bool:
				if f != fVB {
					return senmlTypeError(i, f)
				}
				r.vb = tok
			default:
				return senmlTypeError(i, f)
			}
		}
		d.Token() // }
		if err := p.senmlRecord(&st, i, &r); err != nil {
			return err
		}
	}
	if p.n() == 0 {
		return fail(CodeNoMetrics, "the SenML pack has no values")
	}
	return nil
}
