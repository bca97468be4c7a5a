package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/polis-platform/polis/twin/lifecycle"
	"github.com/polis-platform/polis/twin/registry"
)

// trackerImporter imports into a real lifecycle tracker, without a log:
// the checks and the skipping are the tracker's (twin.Live adds Kafka; its
// own tests and app's run that).
type trackerImporter struct {
	reg *registry.Registry
	mu  sync.Mutex
	tr  *lifecycle.Tracker
	got []lifecycle.Event // every event written
	err error             // returned instead, when set
}

func newTrackerImporter(t *testing.T, reg *registry.Registry) *trackerImporter {
	t.Helper()
	tr := lifecycle.NewTracker(lifecycle.Options{LogFirst: true})
	for _, s := range reg.Sites() {
		for _, a := range s.Assets {
			if err := tr.Add(s.ID, a.ID, lifecycle.Planned); err != nil {
				t.Fatal(err)
			}
		}
	}
	return &trackerImporter{reg: reg, tr: tr}
}

func (ti *trackerImporter) ImportLifecycle(_ context.Context, evs []lifecycle.Event) (int, int, error) {
	ti.mu.Lock()
	defer ti.mu.Unlock()
	if ti.err != nil {
		return 3, 0, ti.err
	}
	for i, ev := range evs {
		if _, ok := ti.reg.Site(ev.Site); !ok {
			return 0, 0, &lifecycle.BatchError{Index: i, Event: ev, Err: lifecycle.ErrUnknownSite}
		}
	}
	write, skipped, err := ti.tr.CheckBatch(evs, testNow)
	if err != nil {
		return 0, 0, err
	}
	for _, ev := range write {
		ti.tr.Apply(ev)
	}
	ti.got = append(ti.got, write...)
	return len(write), skipped, nil
}

// importBody is an NDJSON history of a post office's first assets.
func importBody(site *registry.Site) (string, int) {
	var b strings.Builder
	n := 0
	for i, a := range site.Assets[:3] {
		at := time.Date(2024, 5, 6+i, 9, 0, 0, 0, time.UTC)
		for j, to := range []string{"installed", "commissioned", "operational"} {
			fmt.Fprintf(&b, `{"site":%q,"asset":%q,"to":%q,"at":%q,"cause":"rollout"}`+"\n", site.ID, a.ID, to,
				at.Add(time.Duration(j)*72*time.Hour).Format(time.RFC3339))
			n++
		}
	}
	return b.String(), n
}

func TestImportLifecycle_API(t *testing.T) {
	var imp *trackerImporter
	e := newEnvWith(t, func(o *V1Options) {
		imp = newTrackerImporter(t, o.Fleet.(*registry.Registry))
		o.LifecycleImport = imp
	})
	po := e.postOffice(t)
	body, n := importBody(po)
	ndjson := []string{"Content-Type", "application/x-ndjson"}
	const path = "/api/v1/lifecycle/import"

	refused := func(t *testing.T, b []byte) importRefused {
		t.Helper()
		var r importRefused
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	for _, tc := range []struct {
		name, body string
		hdr        []string
		status     int
		code       ErrorCode
		index      int
		line       int
		msg        string
	}{
		{"no token", body, ndjson, 401, CodeUnauthenticated, 0, 0, ""},
		{"facility manager", body, append(bearer(managerToken), ndjson...), 403, CodeForbidden, 0, 0, ""},
		{"wrong type", body, append(bearer(operatorToken), "Content-Type", "text/csv"), 415, CodeUnsupportedMediaType, 0, 0, "application/x-ndjson"},
		{"empty", "\n\n", append(bearer(operatorToken), ndjson...), 400, CodeBadBody, 0, 0, "no event"},
		{"bad line", body + `{"site":"x"` + "\n", append(bearer(operatorToken), ndjson...), 400, CodeBadBody, n, n + 1, "ends early"},
		{"unknown site", body + `{"site":"PO-999999-1","asset":"atm-1","to":"installed","at":"2024-01-01T00:00:00Z"}`,
			append(bearer(operatorToken), ndjson...), 404, CodeUnknownSite, n, n + 1, "unknown site"},
		{"unknown asset", `{"site":"` + po.ID + `","asset":"atm-99","to":"installed","at":"2024-01-01T00:00:00Z"}`,
			append(bearer(operatorToken), ndjson...), 404, CodeUnknownAsset, 0, 1, "unknown asset"},
		{"move not allowed", strings.Replace(body, `"to":"commissioned"`, `"to":"operational"`, 1),
			append(bearer(operatorToken), ndjson...), 409, CodeTransitionNotAllowed, 1, 2, "installed → operational"},
		{"in the future", body + `{"site":"` + po.ID + `","asset":"` + po.Assets[4].ID + `","to":"installed","at":"2026-03-11T00:00:00Z"}`,
			append(bearer(operatorToken), ndjson...), 400, CodeBadBody, n, n + 1, "future"},
		{"out of order", `{"site":"` + po.ID + `","asset":"` + po.Assets[4].ID + `","to":"installed","at":"2024-01-02T00:00:00Z"}` + "\n" +
			`{"site":"` + po.ID + `","asset":"` + po.Assets[4].ID + `","to":"commissioned","at":"2024-01-01T00:00:00Z"}`,
			append(bearer(operatorToken), ndjson...), 400, CodeBadBody, 1, 2, "not after"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, b := e.do(t, "POST", path, tc.body, tc.hdr...)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d; want %d: %s", resp.StatusCode, tc.status, b)
			}
			if er := decodeError(t, b); er.Code != tc.code || !strings.Contains(er.Message, tc.msg) {
				t.Fatalf("error %+v; want code %s saying %q", er, tc.code, tc.msg)
			}
			if tc.line > 0 {
				if r := refused(t, b); r.Index != tc.index || r.Line != tc.line {
					t.Fatalf("refusal names event %d, line %d; want %d, line %d: %s", r.Index, r.Line, tc.index, tc.line, b)
				}
			}
			if tc.code == CodeTransitionNotAllowed && !strings.Contains(string(b), `"allowed":["commissioned","decommissioned"]`) {
				t.Fatalf("no allowed states in %s", b)
			}
		})
	}
	if len(imp.got) != 0 {
		t.Fatalf("refused imports wrote %d events", len(imp.got))
	}

	// Imported, actor the token's name; again: all skipped.
	resp, b := e.do(t, "POST", path, body, append(bearer(operatorToken), ndjson...)...)
	if resp.StatusCode != 200 || string(b) != fmt.Sprintf(`{"applied":%d,"skipped":0}`+"\n", n) {
		t.Fatalf("import: %d %s", resp.StatusCode, b)
	}
	for _, ev := range imp.got {
		if ev.Actor != "ops" || ev.Cause != "rollout" || ev.From == "" {
			t.Fatalf("event written as %+v", ev)
		}
	}
	if st, _ := imp.tr.State(po.ID, po.Assets[0].ID); st != lifecycle.Operational {
		t.Fatalf("%s/%s is %s after the import", po.ID, po.Assets[0].ID, st)
	}
	resp, b = e.do(t, "POST", path, body, append(bearer(operatorToken), ndjson...)...)
	if resp.StatusCode != 200 || string(b) != fmt.Sprintf(`{"applied":0,"skipped":%d}`+"\n", n) {
		t.Fatalf("import again: %d %s", resp.StatusCode, b)
	}
	// The same as a JSON array, one more event at the end.
	lines := strings.Split(strings.TrimSpace(body), "\n")
	lines = append(lines, `{"site":"`+po.ID+`","asset":"`+po.Assets[0].ID+`","from":"operational","to":"faulty","at":"2025-01-01T10:00:00+01:00"}`)
	resp, b = e.do(t, "POST", path, "[\n"+strings.Join(lines, ",\n")+"\n]", bearer(operatorToken)...)
	if resp.StatusCode != 200 || string(b) != fmt.Sprintf(`{"applied":1,"skipped":%d}`+"\n", n) {
		t.Fatalf("array import: %d %s", resp.StatusCode, b)
	}
	if last := imp.got[len(imp.got)-1]; last.To != lifecycle.Faulty || !last.At.Equal(time.Date(2025, 1, 1, 9, 0, 0, 0, time.UTC)) || last.Cause != lifecycle.CauseImport {
		t.Fatalf("unexpected last event %+v", last)
	}

	// Failures of the importer itself.
	imp.err = fmt.Errorf("twin partition 3: %w", lifecycle.ErrElsewhere)
	if resp, b := e.do(t, "POST", path, body, append(bearer(operatorToken), ndjson...)...); resp.StatusCode != 503 || decodeError(t, b).Code != CodeUnavailable {
		t.Fatalf("another instance's site: %d %s", resp.StatusCode, b)
	}
	imp.err = errors.New("kafka: broker down")
	if resp, b := e.do(t, "POST", path, body, append(bearer(operatorToken), ndjson...)...); resp.StatusCode != 500 ||
		!strings.Contains(decodeError(t, b).Message, "after 3 of its events were written") {
		t.Fatalf("a failure part way: %d %s", resp.StatusCode, b)
	}
}

func TestImportLifecycle_Limits(t *testing.T) {
	// A body over MaxImportBytes: 413.
	e := newEnvLimits(t, Limits{MaxImportBytes: 300}, func(o *V1Options) {
		o.LifecycleImport = newTrackerImporter(t, o.Fleet.(*registry.Registry))
	})
	body, _ := importBody(e.postOffice(t))
	resp, b := e.do(t, "POST", "/api/v1/lifecycle/import", body, append(bearer(operatorToken), "Content-Type", "application/x-ndjson")...)
	if resp.StatusCode != 413 || !strings.Contains(decodeError(t, b).Message, "300") {
		t.Fatalf("oversized import: %d %s", resp.StatusCode, b)
	}
	// A Live that cannot import, and no importer: 503.
	e = newEnv(t)
	resp, b = e.do(t, "POST", "/api/v1/lifecycle/import", body, append(bearer(operatorToken), "Content-Type", "application/x-ndjson")...)
	if resp.StatusCode != 503 || decodeError(t, b).Code != CodeUnavailable {
		t.Fatalf("no importer: %d %s", resp.StatusCode, b)
	}
}
