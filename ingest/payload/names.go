package payload

import "strconv"

// Metric names are ^[a-z][a-z0-9_]{0,63}$: safe as ClickHouse values, Grafana
// labels and rule identifiers without quoting.
const maxNameLen = 64

const nameRule = "must match ^[a-z][a-z0-9_]{0,63}$ (snake_case ASCII with a unit suffix, e.g. temp_c, power_kw)"

func validName[T string | []byte](s T) bool {
	if len(s) == 0 || len(s) > maxNameLen || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' {
			return false
		}
	}
	return true
}

// conv is a unit conversion; an enum rather than a func so the tables stay
// comparable in tests and the hot path has no indirect call.
type conv uint8

const (
	convNone  conv = iota
	convMilli      // W -> kW, Wh -> kWh
	convFtoC
	convKtoC
)

func (c conv) apply(v float64) float64 {
	switch c {
	case convMilli:
		return v / 1000
	case convFtoC:
		// Divide first: (v-32)*5 overflows for v near MaxFloat64.
		return (v - 32) / 9 * 5
	case convKtoC:
		return v - 273.15
	}
	return v
}

// suffixRule rewrites a metric name suffix to the canonical unit. Only
// unambiguous suffixes are listed: _mw/_mwh could be milli or mega, so they
// are left alone.
type suffixRule struct {
	from, to string
	conv     conv
}

var suffixRules = [...]suffixRule{
	{"_w", "_kw", convMilli},
	{"_wh", "_kwh", convMilli},
	{"_f", "_c", convFtoC},
	{"_k", "_c", convKtoC},
}

// normalizeSuffix applies the first matching suffixRule to name in place.
// The rules only lengthen a name by at most one byte, so a buffer of
// maxNameLen+8 never reallocates.
func normalizeSuffix(name []byte) ([]byte, conv) {
	for _, r := range &suffixRules {
		if hasSuffix(name, r.from) {
			return append(name[:len(name)-len(r.from)], r.to...), r.conv
		}
	}
	return name, convNone
}

// nameBuf holds a metric name while it is built, on the stack.
type nameBuf [maxNameLen + 8]byte

// jsonMetric validates and normalises one metric name of the JSON format.
func jsonMetric(key []byte) (string, conv, *Error) {
	if !validName(key) {
		return "", 0, fail(CodeBadMetric, "metric "+strconv.Quote(clip(string(key)))+" "+nameRule)
	}
	var buf nameBuf
	name, c := normalizeSuffix(append(buf[:0], key...))
	if !validName(name) {
		return "", 0, fail(CodeBadMetric, "metric "+strconv.Quote(string(key))+" normalises to "+strconv.Quote(string(name))+", which is too long; shorten it")
	}
	return string(name), c, nil
}

// senmlUnit maps a SenML unit (RFC 8428 §12.1 and RFC 8798) to a metric name
// suffix. strip is the suffix that a name may already carry for the
// unconverted unit (temp_k with "K" becomes temp_c, not temp_k_c).
type senmlUnit struct {
	suffix, strip string
	conv          conv
}

var senmlUnits = map[string]senmlUnit{
	"Cel":   {"_c", "", convNone},
	"K":     {"_c", "_k", convKtoC},
	"W":     {"_kw", "_w", convMilli},
	"kW":    {"_kw", "", convNone},
	"Wh":    {"_kwh", "_wh", convMilli},
	"kWh":   {"_kwh", "", convNone},
	"%RH":   {"_pct", "", convNone},
	"%":     {"_pct", "", convNone},
	"%EL":   {"_pct", "", convNone},
	"/":     {"_ratio", "", convNone},
	"ppm":   {"_ppm", "", convNone},
	"V":     {"_v", "", convNone},
	"A":     {"_a", "", convNone},
	"VA":    {"_va", "", convNone},
	"Hz":    {"_hz", "", convNone},
	"Pa":    {"_pa", "", convNone},
	"dB":    {"_db", "", convNone},
	"lx":    {"_lx", "", convNone},
	"count": {"_count", "", convNone},
	"m":     {"_m", "", convNone},
	"m/s":   {"_mps", "", convNone},
	"m3":    {"_m3", "", convNone},
	"l":     {"_l", "", convNone},
	"kg":    {"_kg", "", convNone},
	"s":     {"_s", "", convNone},
	"rpm":   {"_rpm", "", convNone},
	"lat":   {"_lat", "", convNone},
	"lon":   {"_lon", "", convNone},
}

// senmlMetric derives the metric name of a resolved SenML record: the last
// ':' or '/' segment of bn+n (device URNs and paths carry the device identity,
// which the topic already has), lower-cased, with the unit (u, else bu) as
// suffix unless the name already ends with it. Without a unit the name must
// itself be a metric name; the suffix rules of the JSON format apply.
func senmlMetric(bn, n, unit []byte) (string, conv, *Error) {
	var buf nameBuf
	seg := buf[:0]
	if i := lastSep(n); i >= 0 {
		seg = n[i+1:]
	} else {
		bseg := bn[lastSep(bn)+1:]
		if len(bseg)+len(n) > maxNameLen {
			return "", 0, fail(CodeBadMetric, "the name is longer than "+strconv.Itoa(maxNameLen)+" characters after its last ':' or '/'")
		}
		seg = append(append(seg, bseg...), n...)
	}
	if len(seg) == 0 {
		return "", 0, fail(CodeBadMetric, "the name is empty after its last ':' or '/'; add the measured quantity, e.g. \"temp\" with u \"Cel\"")
	}
	if len(seg) > maxNameLen {
		return "", 0, fail(CodeBadMetric, "the name is longer than "+strconv.Itoa(maxNameLen)+" characters after its last ':' or '/'")
	}
	name := append(buf[:0], seg...) // seg may alias buf; copy is forward-safe
	for i, c := range name {
		if c >= 'A' && c <= 'Z' {
			name[i] = c + 'a' - 'A'
		}
	}
	c := convNone
	if len(unit) == 0 {
		name, c = normalizeSuffix(name)
	} else {
		u, ok := senmlUnits[string(unit)]
		if !ok {
			return "", 0, fail(CodeBadUnit, "unit "+strconv.Quote(clip(string(unit)))+" is not supported; use one of Cel, K, W, kW, Wh, kWh, %RH, %, ppm, V, A, count, m, s, lx, / (or omit u and put the unit in the name, e.g. temp_c)")
		}
		switch {
		case hasSuffix(name, u.suffix):
		case u.strip != "" && hasSuffix(name, u.strip):
			name = append(name[:len(name)-len(u.strip)], u.suffix...)
		default:
			name = append(name, u.suffix...)
		}
		c = u.conv
	}
	if !validName(name) {
		return "", 0, fail(CodeBadMetric, "metric "+strconv.Quote(string(name))+" "+nameRule)
	}
	return string(name), c, nil
}

// hasSuffix requires a stem before the suffix, so "_c" alone is not "temp_c".
func hasSuffix(s []byte, suf string) bool {
	return len(s) > len(suf) && string(s[len(s)-len(suf):]) == suf
}

func lastSep(s []byte) int {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == ':' || s[i] == '/' {
			return i
		}
	}
	return -1
}
