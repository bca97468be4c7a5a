package opendata

import (
	"encoding/xml"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/polis-platform/polis/portal/progress"
)

func fixedSnapshot(s *progress.Snapshot) func() *progress.Snapshot {
	return func() *progress.Snapshot { return s }
}

// parsedFeed is the Atom document as a reader decodes it.
type parsedFeed struct {
	XMLName xml.Name `xml:"http://www.w3.org/2005/Atom feed"`
	Lang    string   `xml:"http://www.w3.org/XML/1998/namespace lang,attr"`
	ID      string   `xml:"id"`
	Updated string   `xml:"updated"`
	Links   []struct {
		Rel  string `xml:"rel,attr"`
		Href string `xml:"href,attr"`
	} `xml:"link"`
	Author  string `xml:"author>name"`
	Entries []struct {
		ID        string `xml:"id"`
		Title     string `xml:"title"`
		Updated   string `xml:"updated"`
		Published string `xml:"published"`
		Summary   string `xml:"summary"`
		Link      struct {
			Href string `xml:"href,attr"`
		} `xml:"link"`
	} `xml:"entry"`
}

func parseFeed(t *testing.T, body []byte) parsedFeed {
	t.Helper()
	var f parsedFeed
	if err := xml.Unmarshal(body, &f); err != nil {
		t.Fatalf("the feed is not Atom XML: %v\n%s", err, body)
	}
	return f
}

func TestAtomFeed(t *testing.T) {
	s := testSnapshot()
	h := newTestHandler(s)
	f := parseFeed(t, mustGet(t, h, FeedPath))

	if f.ID != "tag:polis.example.it,2022:polis/feed" || f.Lang != "it" || f.Author == "" {
		t.Errorf("feed id %q lang %q author %q", f.ID, f.Lang, f.Author)
	}
	if f.Updated != "2026-02-20T10:00:00Z" {
		t.Errorf("feed updated %q, want the newest entry's time", f.Updated)
	}
	rels := map[string]string{}
	for _, l := range f.Links {
		rels[l.Rel] = l.Href
	}
	if rels["self"] != testBase+"/feed.atom" || rels["alternate"] != testBase+"/" || rels["license"] != LicenceURL {
		t.Errorf("links %v", rels)
	}
	want := []struct{ id, updated, link string }{
		{"tag:polis.example.it,2022:polis/office/PO-016001-1", "2026-02-20T10:00:00Z", testBase + "/uffici/PO-016001-1"},
		{"tag:polis.example.it,2022:polis/target/coworking-250", "2026-01-20T08:00:00Z", testBase + "/obiettivi#coworking-250"},
		{"tag:polis.example.it,2022:polis/office/PO-014001-1", "2025-12-01T14:00:00Z", testBase + "/uffici/PO-014001-1"},
	}
	if len(f.Entries) != len(want) {
		t.Fatalf("%d entries, want %d", len(f.Entries), len(want))
	}
	for i, w := range want {
		e := f.Entries[i]
		if e.ID != w.id || e.Updated != w.updated || e.Published != w.updated || e.Link.Href != w.link || e.Title == "" {
			t.Errorf("entry %d: %+v, want %+v", i, e, w)
		}
		if _, err := time.Parse(time.RFC3339, e.Updated); err != nil {
			t.Errorf("entry %d: updated %q is not RFC 3339", i, e.Updated)
		}
	}
	if f.Entries[1].Summary != "1 di 1 <secondo la fonte F16> & altro" {
		t.Errorf("summary not escaped and read back: %q", f.Entries[1].Summary)
	}

	// The next snapshot, with one more entry: the old entries keep their ids.
	s2 := testSnapshot()
	s2.At = s.At.Add(time.Minute)
	s2.Feed = append([]progress.FeedEntry{{ID: "office/PO-064001-1 bis", Title: "Nuovo", Link: "/uffici/PO-064001-1", At: s2.At}}, s2.Feed...)
	f2 := parseFeed(t, mustGet(t, newTestHandler(s2), FeedPath))
	if len(f2.Entries) != 4 || f2.Entries[0].ID != "tag:polis.example.it,2022:polis/office/PO-064001-1%20bis" {
		t.Fatalf("new entry: %+v", f2.Entries)
	}
	for i := range f.Entries {
		if f2.Entries[i+1].ID != f.Entries[i].ID {
			t.Errorf("entry %d changed id: %q -> %q", i, f.Entries[i].ID, f2.Entries[i+1].ID)
		}
	}
}

func TestAtomFeedLimitAndOrder(t *testing.T) {
	s := testSnapshot()
	s.Feed = nil
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 30 { // oldest first: the feed sorts them
		s.Feed = append(s.Feed, progress.FeedEntry{ID: fmt.Sprintf("office/PO-%03d", i), Title: "t", Link: "/uffici/x", At: base.Add(time.Duration(i) * time.Hour)})
	}
	h := New(Options{Snapshot: fixedSnapshot(s), BaseURL: testBase, FeedLimit: 10})
	f := parseFeed(t, mustGet(t, h, FeedPath))
	if len(f.Entries) != 10 || !strings.HasSuffix(f.Entries[0].ID, "PO-029") || !strings.HasSuffix(f.Entries[9].ID, "PO-020") {
		t.Errorf("%d entries, first %q last %q", len(f.Entries), f.Entries[0].ID, f.Entries[len(f.Entries)-1].ID)
	}

	s.Feed = nil
	f = parseFeed(t, mustGet(t, New(Options{Snapshot: fixedSnapshot(s), BaseURL: testBase}), FeedPath))
	if len(f.Entries) != 0 || f.Updated != "2026-03-15T09:30:00Z" {
		t.Errorf("empty feed: %d entries, updated %q (want the snapshot's time)", len(f.Entries), f.Updated)
	}
}

func TestTagEscape(t *testing.T) {
	for in, want := range map[string]string{
		"office/PO-1":   "office/PO-1",
		"target/a b":    "target/a%20b",
		"x<y>#z":        "x%3Cy%3E%23z",
		"àè":            "%C3%A0%C3%A8",
		"a:b@c?d=e&f~g": "a:b@c?d=e&f~g",
	} {
		if got := tagEscape(in); got != want {
			t.Errorf("tagEscape(%q) = %q, want %q", in, got, want)
		}
	}
}
