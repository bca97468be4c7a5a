package payload

import (
	"math"
	"strconv"
)

// SenML (RFC 8428) records are resolved in order: base fields (bn, bt, bu, bv,
// bs, bver) apply to their record and every later one until replaced. The
// metric is the last ':' or '/' segment of bn+n, lower-cased, with the unit
// (u, else bu) as suffix; t+bt is in seconds, and values below 2^28 are
// relative to now. vb is 1/0, vs and vd are refused (not numeric), s is the
// value when there is no v. ut is checked and ignored. A record holding only
// base fields yields no point; any other record needs a value.

// senmlField identifies a SenML label; also used as a presence bit.
type senmlField uint16

const (
	fBN senmlField = 1 << iota
	fBT
	fBU
	fBV
	fBS
	fBver
	fN
	fU
	fV
	fVS
	fVB
	fVD
	fS
	fT
	fUT

	fBase    = fBN | fBT | fBU | fBV | fBS | fBver
	fValue   = fV | fVS | fVB | fVD
	fNumeric = fBT | fBV | fBS | fBver | fV | fS | fT | fUT
	fString  = fBN | fBU | fN | fU | fVS | fVD
)

// senmlLabel returns the field for a label, 0 for an unknown one.
func senmlLabel[T string | []byte](k T) senmlField {
	switch string(k) {
	case "bn":
		return fBN
	case "bt":
		return fBT
	case "bu":
		return fBU
	case "bv":
		return fBV
	case "bs":
		return fBS
	case "bver":
		return fBver
	case "n":
		return fN
	case "u":
		return fU
	case "v":
		return fV
	case "vs":
		return fVS
	case "vb":
		return fVB
	case "vd":
		return fVD
	case "s":
		return fS
	case "t":
		return fT
	case "ut":
		return fUT
	}
	return 0
}

// senmlRec is one record as read; strings alias the payload (or a decoded
// copy when escaped), which is why they stay []byte until a name is built.
type senmlRec struct {
	has                     senmlField
	bn, bu, n, u            []byte
	bt, bv, bs, v, s, t, ut float64
	bver                    float64
	vb                      bool
}

// setNum and setStr store a decoded field by label.
func (r *senmlRec) setNum(f senmlField, v float64) {
	switch f {
	case fBT:
		r.bt = v
	case fBV:
		r.bv = v
	case fBS:
		r.bs = v
	case fBver:
		r.bver = v
	case fV:
		r.v = v
	case fS:
		r.s = v
	case fT:
		r.t = v
	case fUT:
		r.ut = v
	}
}

func (r *senmlRec) setStr(f senmlField, s []byte) {
	switch f {
	case fBN:
		r.bn = s
	case fBU:
		r.bu = s
	case fN:
		r.n = s
	case fU:
		r.u = s
	}
}

func senmlLabelName(f senmlField) string {
	for _, l := range [...]string{"bn", "bt", "bu", "bv", "bs", "bver", "n", "u", "v", "vs", "vb", "vd", "s", "t", "ut"} {
		if senmlLabel(l) == f {
			return l
		}
	}
	return "?"
}

func senmlWhere(i int) string { return "SenML record " + strconv.Itoa(i) }

func senmlTypeError(i int, f senmlField) *Error {
	want := "a number"
	switch {
	case f&fString != 0:
		want = "a string"
	case f == fVB:
		want = "true or false"
	}
	return fail(CodeBadSenML, senmlWhere(i)+": "+strconv.Quote(senmlLabelName(f))+" must be "+want)
}

// senmlRangeError is for a number literal outside float64 (1e999).
func senmlRangeError(i int, f senmlField) *Error {
	c := CodeBadSenML
	switch f {
	case fV, fBV, fS, fBS:
		c = CodeNonFinite
	case fT, fBT:
		c = CodeBadTimestamp
	}
	return fail(c, senmlWhere(i)+": "+strconv.Quote(senmlLabelName(f))+" is out of float64 range")
}

func senmlDupError(i int, label string) *Error {
	return fail(CodeBadSenML, senmlWhere(i)+": label "+strconv.Quote(clip(label))+" appears twice")
}

func senmlMustUnderstand(i int, label string) *Error {
	// RFC 8428 §4.4: labels ending in '_' must be understood or refused.
	return fail(CodeBadSenML, senmlWhere(i)+": label "+strconv.Quote(clip(label))+" must be understood (ends in '_') and is not supported")
}

// senmlState carries the base values between records.
type senmlState struct {
	bn, bu     []byte
	bt, bv, bs float64
	bver       int
}

// senmlVersion is the SenML version this decoder implements (RFC 8428).
const senmlVersion = 10

func (p *points) senmlRecord(st *senmlState, i int, r *senmlRec) *Error {
	if r.has&fBver != 0 {
		v := r.bver
		if v != math.Trunc(v) || v < 1 || v > senmlVersion {
			return fail(CodeBadSenML, senmlWhere(i)+": bver "+strconv.FormatFloat(v, 'g', -1, 64)+" is not a SenML version this server understands (1 to 10)")
		}
		if st.bver != 0 && st.bver != int(v) {
			return fail(CodeBadSenML, senmlWhere(i)+": bver differs from an earlier record; a pack has one version")
		}
		st.bver = int(v)
	}
	if r.has&fBN != 0 {
		st.bn = r.bn
	}
	if r.has&fBT != 0 {
		st.bt = r.bt
	}
	if r.has&fBU != 0 {
		st.bu = r.bu
	}
	if r.has&fBV != 0 {
		st.bv = r.bv
	}
	if r.has&fBS != 0 {
		st.bs = r.bs
	}
	vals := r.has & fValue
	if vals&(vals-1) != 0 {
		return fail(CodeBadSenML, senmlWhere(i)+": more than one of v, vs, vb, vd; a record carries one value")
	}
	if vals == 0 && r.has&fS == 0 {
		if r.has&^fBase == 0 {
			return nil // base fields only
		}
		return fail(CodeBadSenML, senmlWhere(i)+": no value; add \"v\" (or \"vb\", \"s\")")
	}

	unit := r.u
	if r.has&fU == 0 || len(unit) == 0 {
		unit = st.bu
	}
	metric, c, err := senmlMetric(st.bn, r.n, unit)
	if err != nil {
		err.Msg = senmlWhere(i) + " (name " + strconv.Quote(clip(string(st.bn)+string(r.n))) + "): " + err.Msg
		return err
	}

	var v float64
	switch {
	case vals == fVS || vals == fVD:
		return fail(CodeNonNumeric, senmlWhere(i)+" ("+metric+"): string and data values (vs, vd) are not telemetry; send them as an event")
	case vals == fVB:
		v = boolValue(r.vb)
	case vals == fV:
		v = st.bv + r.v
	default:
		v = st.bs + r.s
	}

	t := st.bt + r.t
	ms := t * 1000
	if t < senmlRelativeBelow {
		ms += float64(p.w.now)
	}
	ts, err := p.w.msFromFloat(ms, "time")
	if err == nil {
		err = p.add(metric, ts, v, c)
	}
	if err != nil {
		err.Msg = senmlWhere(i) + " (" + metric + "): " + err.Msg
	}
	return err
}

// decodeSenML reads a SenML pack; b starts with '['.
func decodeSenML(p *points, b []byte) *Error {
	s := scanner{b: b}
	return syntaxFirst(b, s.senml(p))
}

func (s *scanner) senml(p *points) *Error {
	s.i++ // '['
	var st senmlState
	if !s.eat(']') {
		for i := 0; ; i++ {
			if s.peek() != '{' {
				return fail(CodeBadSenML, senmlWhere(i)+` is not an object; SenML is an array of records like {"n":"temp","u":"Cel","v":21.5}`)
			}
			s.i++
			var r senmlRec
			if err := s.senmlFields(i, &r); err != nil {
				return err
			}
			if err := p.senmlRecord(&st, i, &r); err != nil {
				return err
			}
			more, err := s.more(']')
			if err != nil {
				return err
			}
			if !more {
				break
			}
		}
	}
	if err := s.end(); err != nil {
		return err
	}
	if p.n() == 0 {
		return fail(CodeNoMetrics, "the SenML pack has no values")
	}
	return nil
}

// senmlFields reads the members of record i after its '{'.
func (s *scanner) senmlFields(i int, r *senmlRec) *Error {
	if s.eat('}') {
		return nil
	}
	for {
		k, err := s.key()
		if err != nil {
			return err
		}
		f := senmlLabel(k)
		switch {
		case f == 0:
			if len(k) > 0 && k[len(k)-1] == '_' {
				return senmlMustUnderstand(i, string(k))
			}
			if err := s.skip(2); err != nil {
				return err
			}
		case r.has&f != 0:
			return senmlDupError(i, string(k))
		case f&fNumeric != 0:
			if c := s.peek(); c != '-' && !isDigit(c) {
				return senmlTypeError(i, f)
			}
			v, ok, err := s.float()
			if err != nil {
				return err
			}
			if !ok {
				return senmlRangeError(i, f)
			}
			r.setNum(f, v)
		case f&fString != 0:
			if s.peek() != '"' {
				return senmlTypeError(i, f)
			}
			v, err := s.str()
			if err != nil {
				return err
			}
			r.setStr(f, v)
		default: // fVB
			b, ok := s.boolean()
			if !ok {
				return senmlTypeError(i, f)
			}
			r.vb = b
		}
		r.has |= f
		more, err := s.more('}')
		if err != nil || !more {
			return err
		}
	}
}
