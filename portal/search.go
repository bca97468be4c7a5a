package portal

import (
	"sort"
	"strings"
	"unicode"

	"golang.org/x/text/unicode/norm"

	"github.com/polis-platform/polis/portal/progress"
)

// maxQuery bounds what a search reads of its query: no comune's name is
// longer, and a long query must not cost more than a short one.
const maxQuery = 100

// maxResults bounds a search's answer.
const maxResults = 50

// fold reduces a name to what a search compares: lower case, accents and
// other marks dropped, and every run of what is not a letter or a digit (a
// space, an apostrophe, a hyphen) made one space. "Sant'Angelo a Fasanella"
// and "sant angelo a fasanella" fold alike, and so do "Forlì" and "forli".
func fold(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	space := false
	for _, r := range norm.NFD.String(s) {
		switch {
		case unicode.Is(unicode.Mn, r):
			continue
		case r == 'ß':
			b.WriteString("ss")
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			if space && b.Len() > 0 {
				b.WriteByte(' ')
			}
			space = false
			b.WriteRune(unicode.ToLower(r))
		default:
			space = true
		}
	}
	return b.String()
}

// searchIndex holds the folded names of a snapshot's comuni.
type searchIndex struct {
	comuni []*progress.Area
	folded []string
}

func newSearchIndex(snap *progress.Snapshot) *searchIndex {
	ix := &searchIndex{comuni: snap.Comuni, folded: make([]string, len(snap.Comuni))}
	for i, c := range snap.Comuni {
		ix.folded[i] = fold(c.Name)
	}
	return ix
}

// match ranks: lower is better.
const (
	rankExact = iota
	rankPrefix
	rankWordPrefix
	rankInside
)

type hit struct {
	area *progress.Area
	key  string // the folded name: the order of the results
	rank int
}

// search finds the comuni whose name contains q, accents and case aside:
// the name itself first, then names that start with q, then names with a
// word that starts with q, then the rest; by name within each rank. It
// returns at most limit hits and how many there were in all.
func (ix *searchIndex) search(q string, limit int) ([]*progress.Area, int) {
	if len(q) > maxQuery {
		q = q[:maxQuery]
	}
	fq := fold(q)
	if fq == "" {
		return nil, 0
	}
	var hits []hit
	for i, name := range ix.folded {
		at := strings.Index(name, fq)
		if at < 0 {
			continue
		}
		rank := rankInside
		switch {
		case name == fq:
			rank = rankExact
		case at == 0:
			rank = rankPrefix
		case strings.Contains(" "+name, " "+fq):
			rank = rankWordPrefix
		}
		hits = append(hits, hit{ix.comuni[i], name, rank})
	}
	sort.SliceStable(hits, func(i, j int) bool {
		if hits[i].rank != hits[j].rank {
			return hits[i].rank < hits[j].rank
		}
		return hits[i].key < hits[j].key
	})
	total := len(hits)
	if len(hits) > limit {
		hits = hits[:limit]
	}
	out := make([]*progress.Area, len(hits))
	for i, h := range hits {
		out[i] = h.area
	}
	return out, total
}
