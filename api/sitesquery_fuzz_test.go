package api

import (
	"net/url"
	"strings"
	"testing"

	"github.com/polis-platform/polis/twin/registry"
)

// FuzzSiteQuery feeds raw query strings to the sites-list parser: it must
// never panic, a refusal must be a message for a person, and an accepted
// query must be within bounds.
func FuzzSiteQuery(f *testing.F) {
	for _, s := range []string{
		"", "region=Piemonte&kind=post_office", "limit=1000&offset=5", "limit=-1", "status=blue",
		"comune=001002", "comune=Airasca", "province=TO", "q=via%20roma", "cursor=UE8tMDAxMDAyLTE",
		"asset_type=evc&status=online", "kind=castle", "offset=1&cursor=x", "regoin=x", "limit=1&limit=2",
	} {
		f.Add(s)
	}
	reg, _, err := registry.Generate(registry.GenerateOptions{Sites: 6, Coworking: 2, Seed: 7, Comuni: testComuni})
	if err != nil {
		f.Fatal(err)
	}
	sites := reg.Sites()
	voc := fleetVocab(sites)
	f.Fuzz(func(t *testing.T, raw string) {
		v, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		q, err := parseSiteQuery(v, voc)
		if err != nil {
			if err.Error() == "" || strings.ContainsAny(err.Error(), "\x00") {
				t.Fatalf("unhelpful error %q for %q", err, raw)
			}
			return
		}
		if q.Limit < 1 || q.Limit > maxLimit || q.Offset < 0 || (q.After != "" && q.Offset != 0) {
			t.Fatalf("out-of-bounds query %+v accepted from %q", q, raw)
		}
		for _, s := range sites {
			q.matches(s)
		}
	})
}
