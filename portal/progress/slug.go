package progress

import (
	"strings"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

// Slug makes a URL segment of a place name: lower case ASCII letters and
// digits, words joined by single dashes. Accents are stripped ("Forlì" ->
// "forli"), and apostrophes, spaces and any other punctuation separate
// words ("Reggio nell'Emilia" -> "reggio-nell-emilia").
//
// Bilingual names, written "Italian/other" in ISTAT's lists ("Valle
// d'Aosta/Vallée d'Aoste", "Trentino-Alto Adige/Südtirol", "Bolzano/Bozen"),
// take the Italian part only: the portal is in Italian and its URLs are
// stable whatever the spelling of the second name. A name of no letter or
// digit gives "".
func Slug(name string) string {
	if i := strings.IndexByte(name, '/'); i >= 0 {
		name = name[:i]
	}
	var b strings.Builder
	b.Grow(len(name))
	dash := false // a separator is pending
	for _, r := range norm.NFD.String(name) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
		case r >= 'A' && r <= 'Z':
			r += 'a' - 'A'
		case unicode.Is(unicode.Mn, r):
			continue // the accent of a decomposed letter
		default:
			if s, ok := foldSpecial[r]; ok {
				if dash && b.Len() > 0 {
					b.WriteByte('-')
				}
				dash = false
				b.WriteString(s)
				continue
			}
			dash = true
			continue
		}
		if dash && b.Len() > 0 {
			b.WriteByte('-')
		}
		dash = false
		b.WriteRune(r)
	}
	return b.String()
}

// foldSpecial are letters NFD does not decompose into a base letter and an
// accent.
var foldSpecial = map[rune]string{
	'ß': "ss", 'ẞ': "ss", 'æ': "ae", 'Æ': "ae", 'œ': "oe", 'Œ': "oe",
	'ø': "o", 'Ø': "o", 'ł': "l", 'Ł': "l", 'đ': "d", 'Đ': "d", 'ð': "d", 'Ð': "d",
	'þ': "th", 'Þ': "th", 'ı': "i",
}
