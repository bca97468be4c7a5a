package opendata

import (
	"cmp"
	"encoding/xml"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/polis-platform/polis/portal/progress"
)

// An Atom feed (RFC 4287) of the snapshot's feed entries: targets achieved
// and offices becoming operational, newest first.

type atomFeed struct {
	XMLName  xml.Name    `xml:"http://www.w3.org/2005/Atom feed"`
	Lang     string      `xml:"http://www.w3.org/XML/1998/namespace lang,attr"`
	ID       string      `xml:"id"`
	Title    atomText    `xml:"title"`
	Subtitle atomText    `xml:"subtitle"`
	Updated  string      `xml:"updated"`
	Links    []atomLink  `xml:"link"`
	Author   atomPerson  `xml:"author"`
	Rights   atomText    `xml:"rights"`
	Entries  []atomEntry `xml:"entry"`
}

type atomText struct {
	Type string `xml:"type,attr"`
	Text string `xml:",chardata"`
}

type atomLink struct {
	Rel  string `xml:"rel,attr"`
	Type string `xml:"type,attr,omitempty"`
	Href string `xml:"href,attr"`
}

type atomPerson struct {
	Name string `xml:"name"`
	URI  string `xml:"uri,omitempty"`
}

type atomCategory struct {
	Term  string `xml:"term,attr"`
	Label string `xml:"label,attr"`
}

type atomEntry struct {
	ID        string       `xml:"id"`
	Title     atomText     `xml:"title"`
	Updated   string       `xml:"updated"`
	Published string       `xml:"published"`
	Link      atomLink     `xml:"link"`
	Category  atomCategory `xml:"category"`
	Summary   atomText     `xml:"summary"`
}

// tagPrefix is the start of every id of the feed: a tag URI (RFC 4151)
// under the portal's host, so that an entry keeps its id from one snapshot
// to the next. The date is the start of the programme's works.
func tagPrefix(base string) string {
	host := "localhost"
	if u, err := url.Parse(base); err == nil && u.Hostname() != "" {
		host = strings.ToLower(u.Hostname())
	}
	return "tag:" + host + ",2022:polis/"
}

// tagEscape keeps the characters a tag URI's specific part may hold and
// percent-encodes the others.
func tagEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			strings.IndexByte("-._~!$&'()*+,;=:@/?", c) >= 0:
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// absolute makes a portal path absolute under base.
func absolute(base, link string) string {
	switch {
	case strings.HasPrefix(link, "https://"), strings.HasPrefix(link, "http://"):
		return link
	case strings.HasPrefix(link, "/"):
		return base + link
	}
	return base + "/" + link
}

func category(id string) atomCategory {
	switch {
	case strings.HasPrefix(id, "target/"):
		return atomCategory{"obiettivo", "Obiettivo raggiunto"}
	case strings.HasPrefix(id, "office/"):
		return atomCategory{"ufficio", "Ufficio operativo"}
	}
	return atomCategory{"altro", "Altro"}
}

func atomTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// feed is the Atom document of the snapshot's entries, at most limit of
// them, newest first. Its updated is the newest entry's time (the
// snapshot's when there is none).
func feed(base string, s *progress.Snapshot, at time.Time, holder Agent, limit int) ([]byte, error) {
	entries := slices.Clone(s.Feed)
	slices.SortStableFunc(entries, func(a, b progress.FeedEntry) int {
		if c := b.At.Compare(a.At); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	if limit > 0 && len(entries) > limit {
		entries = entries[:limit]
	}
	prefix := tagPrefix(base)
	updated := at
	if len(entries) > 0 {
		updated = entries[0].At
	}
	f := atomFeed{
		Lang:     "it",
		ID:       prefix + "feed",
		Title:    atomText{"text", "Polis: obiettivi raggiunti e uffici operativi"},
		Subtitle: atomText{"text", "Gli obiettivi del programma Polis raggiunti e gli uffici postali diventati operativi, secondo il gemello digitale."},
		Updated:  atomTime(updated),
		Links: []atomLink{
			{Rel: "self", Type: "application/atom+xml", Href: base + FeedPath},
			{Rel: "alternate", Type: "text/html", Href: base + "/"},
			{Rel: "license", Href: LicenceURL},
		},
		Author: atomPerson{Name: holder.Name, URI: base + "/"},
		Rights: atomText{"text", "Dati rilasciati con licenza " + LicenceName},
	}
	for _, e := range entries {
		f.Entries = append(f.Entries, atomEntry{
			ID:        prefix + tagEscape(e.ID),
			Title:     atomText{"text", e.Title},
			Updated:   atomTime(e.At),
			Published: atomTime(e.At),
			Link:      atomLink{Rel: "alternate", Type: "text/html", Href: absolute(base, e.Link)},
			Category:  category(e.ID),
			Summary:   atomText{"text", e.Summary},
		})
	}
	b, err := xml.MarshalIndent(f, "", " ")
	if err != nil {
		return nil, fmt.Errorf("encode Atom feed: %w", err)
	}
	out := make([]byte, 0, len(xml.Header)+len(b)+1)
	out = append(out, xml.Header...)
	out = append(out, b...)
	return append(out, '\n'), nil
}
