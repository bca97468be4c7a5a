package app_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/polis-platform/polis/app"
	"github.com/polis-platform/polis/internal/testutil"
	"github.com/polis-platform/polis/services"
	"github.com/polis-platform/polis/twin/lifecycle"
	"github.com/polis-platform/polis/twin/registry"
)

// device is a simulated device connected with paho under its own
// credentials, publishing telemetry with strictly increasing timestamps.
type device struct {
	t     *testing.T
	cl    paho.Client
	topic string
}

var lastTS atomic.Int64

func connectAs(t *testing.T, e *env, p *app.Platform, site, asset string) *device {
	t.Helper()
	i := slices.IndexFunc(e.creds, func(c registry.Credential) bool { return c.Site == site && c.Asset == asset })
	if i < 0 {
		t.Fatalf("no credentials for %s/%s", site, asset)
	}
	c := e.creds[i]
	cl := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + p.Broker.Addr()).SetClientID(c.Username).
		SetUsername(c.Username).SetPassword(c.Password).SetAutoReconnect(false).SetConnectTimeout(5 * time.Second))
	if tok := cl.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("connect as %s: %v", c.Username, tok.Error())
	}
	t.Cleanup(func() { cl.Disconnect(50) })
	return &device{t: t, cl: cl, topic: fmt.Sprintf("polis/v1/%s/%s/telemetry", site, asset)}
}

// publish sends metrics at QoS 1 and waits for the broker's
// acknowledgement (which comes once Kafka has the record).
func (d *device) publish(metrics map[string]float64) {
	d.t.Helper()
	ts := max(time.Now().UnixMilli(), lastTS.Load()+1)
	lastTS.Store(ts)
	b, err := json.Marshal(map[string]any{"ts": ts, "m": metrics})
	if err != nil {
		d.t.Fatal(err)
	}
	if tok := d.cl.Publish(d.topic, 1, false, b); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		d.t.Fatalf("publish on %s: %v", d.topic, tok.Error())
	}
}

// officeServices reads GET /api/v1/offices/{site}/services.
func officeServices(t *testing.T, base, site string) map[string]services.Availability {
	t.Helper()
	var body struct {
		Services []services.Availability `json:"services"`
	}
	if code := getJSON(t, base+"/api/v1/offices/"+site+"/services", &body); code != 200 {
		t.Fatalf("office %s: status %d", site, code)
	}
	out := map[string]services.Availability{}
	for _, a := range body.Services {
		out[a.Service] = a
	}
	return out
}

// waitFor polls the office page until the service's answer is as wanted.
func waitFor(t *testing.T, base, site, service string, available bool, reason string) services.Availability {
	t.Helper()
	var last services.Availability
	testutil.Eventually(t, 30*time.Second, 100*time.Millisecond, func() bool {
		last = officeServices(t, base, site)[service]
		return last.Available == available && last.Reason == reason
	}, "%s at %s: want available %v, reason %q; last %v", service, site, available, reason, testutil.Lazy(func() any { return last }))
	return last
}

// Devices change state over MQTT, through the broker, Kafka and the twin;
// the citizen-services API answers accordingly: a totem going offline,
// its paper running out and its repair; an ATM's cash dropping; a
// charger's connector freeing; the counter covering for the totem while
// the office is open.
func TestServices_FollowDevicesEndToEnd(t *testing.T) {
	e := newEnv(t)
	token := e.operatorToken(t)

	// Two offices with a totem, an ATM and a charger: one open around the
	// clock, one closed today (it opens only on the weekday three days
	// from now). Their totems and ATMs are in acceptance (commissioned)
	// until an operator puts them in service; the chargers are in service.
	reg, err := registry.Load(e.cfg.RegistryPath)
	if err != nil {
		t.Fatal(err)
	}
	var offices []*registry.Site
	for _, s := range reg.Sites() {
		has := func(id string) bool {
			return slices.ContainsFunc(s.Assets, func(a *registry.Asset) bool { return a.ID == id })
		}
		if s.Kind == registry.KindPostOffice && has("totem-1") && has("atm-1") && has("evc-1") {
			offices = append(offices, s)
		}
	}
	if len(offices) < 2 {
		t.Fatalf("the test fleet has %d offices with a totem, an ATM and a charger; want 2", len(offices))
	}
	openSite, closedSite := offices[0], offices[1]
	rome, err := time.LoadLocation("Europe/Rome")
	if err != nil {
		t.Fatal(err)
	}
	later := [7]string{"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"}[time.Now().In(rome).AddDate(0, 0, 3).Weekday()]
	openSite.OpeningHours = registry.MustParseOpeningHours("Mon-Sun 00:00-24:00")
	closedSite.OpeningHours = registry.MustParseOpeningHours(later + " 10:00-11:00")
	for _, s := range offices[:2] {
		for _, a := range s.Assets {
			switch a.Type {
			case registry.TypeTotem, registry.TypeATM:
				a.Lifecycle = lifecycle.Commissioned
			case registry.TypeEVC:
				a.Lifecycle = lifecycle.Operational
			}
		}
	}
	if err := reg.Save(e.cfg.RegistryPath); err != nil {
		t.Fatal(err)
	}

	p := e.start(t)
	defer stop(t, p)
	base := "http://" + p.HTTP.Addr()
	holiday := services.HolidayAt(time.Now()) != ""

	// Not in service yet: the closed office says so, with its next opening
	// for the counter; the open one serves at the counter (unless today is
	// a national holiday).
	a := waitFor(t, base, closedSite.ID, "civil_certificate", false, services.ReasonTotemNotInService)
	if a.Channel != services.ChannelTotem || len(a.Channels) != 2 || a.Channels[1].Reason != services.ReasonOfficeClosed && a.Channels[1].Reason != services.ReasonHoliday {
		t.Fatalf("closed office: %+v", a)
	}
	if holiday {
		waitFor(t, base, openSite.ID, "civil_certificate", false, services.ReasonTotemNotInService)
	} else {
		waitFor(t, base, openSite.ID, "civil_certificate", true, "")
	}

	// An operator puts the totems and the ATM in service.
	move := func(site, asset string, to lifecycle.State) {
		t.Helper()
		body := fmt.Sprintf(`{"to":%q,"cause":"services test"}`, to)
		r, _ := http.NewRequest("POST", fmt.Sprintf("%s/api/v1/sites/%s/assets/%s/lifecycle", base, site, asset), bytes.NewBufferString(body))
		r.Header.Set("Authorization", "Bearer "+token)
		r.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("lifecycle %s/%s → %s: %d %s", site, asset, to, resp.StatusCode, b)
		}
	}
	move(closedSite.ID, "totem-1", lifecycle.Operational)
	move(closedSite.ID, "atm-1", lifecycle.Operational)
	move(openSite.ID, "totem-1", lifecycle.Operational)

	// The totem of the closed office: never heard from, then up with
	// paper, offline, out of paper.
	waitFor(t, base, closedSite.ID, "civil_certificate", false, services.ReasonTwinUnknown)
	totem := connectAs(t, e, p, closedSite.ID, "totem-1")
	totem.publish(map[string]float64{"online": 1, "paper_pct": 80, "session_count": 10})
	a = waitFor(t, base, closedSite.ID, "civil_certificate", true, "")
	if a.Channel != services.ChannelTotem {
		t.Fatalf("served by %s", a.Channel)
	}
	totem.publish(map[string]float64{"online": 0})
	a = waitFor(t, base, closedSite.ID, "civil_certificate", false, services.ReasonTotemOffline)
	if !holiday && a.ExpectedAt.IsZero() {
		t.Fatalf("no expected return from the counter: %+v", a)
	}
	// The finder lists the office with the same answer.
	var page struct {
		Items []services.OfficeAvailability `json:"items"`
	}
	url := fmt.Sprintf("%s/api/v1/services/civil_certificate/offices?near=%g,%g&radius_km=1", base, closedSite.Lat, closedSite.Lon)
	if code := getJSON(t, url, &page); code != 200 || len(page.Items) == 0 || page.Items[0].Site != closedSite.ID ||
		page.Items[0].Availability.Reason != services.ReasonTotemOffline {
		t.Fatalf("finder: %d %+v", code, page)
	}
	// A fault moves an operational asset to faulty by evidence; the twin
	// must have done it before the paper runs out, or the order of the
	// answers below would depend on when it lands.
	testutil.Eventually(t, 30*time.Second, 100*time.Millisecond, func() bool {
		var as struct{ Lifecycle string }
		getJSON(t, fmt.Sprintf("%s/api/v1/sites/%s/assets/totem-1", base, closedSite.ID), &as)
		return as.Lifecycle == string(lifecycle.Faulty)
	}, "the totem did not become faulty by evidence")
	totem.publish(map[string]float64{"online": 1, "paper_pct": 0})
	waitFor(t, base, closedSite.ID, "civil_certificate", false, services.ReasonTotemNoPaper)
	totem.publish(map[string]float64{"paper_pct": 100})
	waitFor(t, base, closedSite.ID, "civil_certificate", false, services.ReasonTotemFaulty)
	move(closedSite.ID, "totem-1", lifecycle.Operational) // the repair, confirmed
	waitFor(t, base, closedSite.ID, "civil_certificate", true, "")

	// The open office: its totem goes offline, the counter covers.
	openTotem := connectAs(t, e, p, openSite.ID, "totem-1")
	openTotem.publish(map[string]float64{"online": 1, "paper_pct": 50})
	waitFor(t, base, openSite.ID, "isee", true, "")
	openTotem.publish(map[string]float64{"online": 0})
	if holiday {
		waitFor(t, base, openSite.ID, "isee", false, services.ReasonTotemOffline)
	} else {
		a = waitFor(t, base, openSite.ID, "isee", true, "")
		if a.Channel != services.ChannelCounter || a.Channels[0].Reason != services.ReasonTotemOffline {
			t.Fatalf("counter fallback: %+v", a)
		}
	}

	// The ATM: cash, then below the threshold.
	atm := connectAs(t, e, p, closedSite.ID, "atm-1")
	atm.publish(map[string]float64{"available": 1, "cash_eur": 48000})
	waitFor(t, base, closedSite.ID, "cash_withdrawal", true, "")
	atm.publish(map[string]float64{"available": 1, "cash_eur": services.MinCashEUR - 100})
	waitFor(t, base, closedSite.ID, "cash_withdrawal", false, services.ReasonATMNoCash)

	// The charger: charging, then free.
	evc := connectAs(t, e, p, closedSite.ID, "evc-1")
	evc.publish(map[string]float64{"connector_state": 1, "power_kw": 11})
	waitFor(t, base, closedSite.ID, "ev_charging", false, services.ReasonChargerBusy)
	evc.publish(map[string]float64{"connector_state": 0, "power_kw": 0})
	waitFor(t, base, closedSite.ID, "ev_charging", true, "")

	// The public API's headers hold end to end.
	resp, err := http.Get(base + "/api/v1/services/ev_charging/offices?near=" + fmt.Sprintf("%g,%g", closedSite.Lat, closedSite.Lon))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != "*" || resp.Header.Get("ETag") == "" ||
		resp.Header.Get("Cache-Control") != "public, max-age=10" {
		t.Fatalf("%d %v", resp.StatusCode, resp.Header)
	}
}
