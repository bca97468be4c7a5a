package portal

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/polis-platform/polis/portal/opendata"
	"github.com/polis-platform/polis/portal/progress"
	"github.com/polis-platform/polis/services"
)

// testNow is the clock of every test: a Monday morning, offices open.
var testNow = time.Date(2026, time.March, 16, 10, 30, 0, 0, rome)

// fixedAnswers stands in for services.Finder, which needs the registry
// and the live twin that progress.Fixture keeps to itself; the services
// package tests the answers, these tests how the office page shows them.
type fixedAnswers map[string][]services.Availability

func (f fixedAnswers) Office(site string, _ time.Time) ([]services.Availability, bool) {
	a, ok := f[site]
	return a, ok
}

// testAnswers: one office with every kind of answer, one the finder does
// not know (PO-111027-1 is in the fixture but not here).
var testAnswers = fixedAnswers{
	"PO-001001-1": {
		{Service: "cie", Name: "Carta d'identità elettronica", Available: true, Channel: services.ChannelCounter},
		{Service: "certificato_nascita", Name: "Certificato di nascita", Available: true, Channel: services.ChannelTotem},
		{Service: "prelievo", Name: "Prelievo di contanti", Available: false, Channel: services.ChannelATM,
			Reason: "atm_no_cash", Message: "L'ATM è senza contanti", ExpectedAt: time.Date(2026, time.March, 16, 14, 0, 0, 0, rome)},
	},
	"PO-057027-1": {
		{Service: "prelievo", Name: "Prelievo di contanti", Available: false, Channel: services.ChannelATM,
			Reason: "atm_offline", Message: "L'ATM non è raggiungibile"},
	},
}

// testPortal is the portal over progress.Fixture at testNow, with the
// real open data handler mounted at /dati/ and /feed.atom.
func testPortal(t testing.TB, mods ...func(*Options)) (*Handler, *progress.Snapshot) {
	t.Helper()
	snap := progress.Fixture(testNow)
	get := func() *progress.Snapshot { return snap }
	o := Options{
		Snapshot: get,
		Services: testAnswers,
		Now:      func() time.Time { return testNow },
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
		OpenData: opendata.New(opendata.Options{Snapshot: get, Now: func() time.Time { return testNow },
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}),
	}
	for _, m := range mods {
		m(&o)
	}
	h, err := New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return h, snap
}

// get runs one GET through h.
func get(t testing.TB, h http.Handler, target string) *httptest.ResponseRecorder {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, target, nil))
	return w
}

func TestPrepA(t *testing.T) {
	for name, want := range map[string]string{"Agliè": "ad", "Alberobello": "ad", "Candelo": "a", "Usssana": "a", "Tolmezzo": "a"} {
		if got := prepA(name); got != want {
			t.Errorf("prepA(%q) = %q, want %q", name, got, want)
		}
	}
}
