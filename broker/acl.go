package broker

import (
	"strings"

	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/polis-platform/polis/ingest/topic"
)

type role int

const (
	roleDevice  role = iota // one asset: its own topics only
	roleGateway             // a site gateway: every asset of its site
	roleService             // a configured account with topic patterns
)

// principal is who a connected client is, fixed at authentication.
type principal struct {
	role        role
	site, asset string   // device and gateway
	name        string   // service account
	publish     []string // service account filters
	subscribe   []string
	ids         *packetIDs // its session's packet id translation
	// The fields below are guarded by hook.mu.
	willStatus  bool         // its will was a status publish, already ingested
	ended       bool         // its connection ended; its persistent session lives on
	prev        *mqtt.Client // the connection it took its session over from
	subscribing []string     // the filters of the SUBSCRIBE being processed
}

func (p *principal) String() string {
	if p.role == roleService {
		return "service:" + p.name
	}
	return p.site + "/" + p.asset
}

// devicePublishes are the kinds a device (or its gateway) may publish.
var devicePublishes = map[topic.Kind]bool{topic.Telemetry: true, topic.Event: true, topic.Reported: true, topic.Status: true}

// canPublish implements the ACLs of docs/design.md for a concrete topic name.
func (p *principal) canPublish(name string) bool {
	if p.role == roleService {
		for _, f := range p.publish {
			if matches(f, name) {
				return true
			}
		}
		return false
	}
	t, err := topic.Parse(name)
	if err != nil || t.Site != p.site || !devicePublishes[t.Kind] {
		return false
	}
	return p.role == roleGateway || t.Asset == p.asset
}

// canSubscribe checks a subscription filter, and the name of a message
// before it is delivered: devices read only their own desired state; a
// gateway reads its site's; a service account what its patterns cover. A
// shared subscription ($share/GROUP/filter) is checked as its filter. A
// filter or name starting with '$' ($SYS) is covered only by a pattern that
// names it: '#' and '+' do not reach it, as they do not match it [MQTT-4.7.2-1].
func (p *principal) canSubscribe(filter string) bool {
	if f, ok := sharedFilter(filter); ok {
		filter = f
	}
	switch p.role {
	case roleService:
		for _, f := range p.subscribe {
			if matches(f, filter) {
				return true
			}
		}
		return false
	case roleGateway:
		if filter == topic.Build(p.site, "+", topic.Desired) {
			return true
		}
		t, err := topic.Parse(filter)
		return err == nil && t.Site == p.site && t.Kind == topic.Desired && !strings.ContainsAny(t.Asset, "+#")
	default:
		return filter == topic.Build(p.site, p.asset, topic.Desired)
	}
}

// sharedFilter returns the filter of a shared subscription
// ($share/GROUP/filter, the prefix in any case as mochi accepts it).
func sharedFilter(f string) (string, bool) {
	const prefix = "$share/"
	if len(f) <= len(prefix) || !strings.EqualFold(f[:len(prefix)], prefix) {
		return f, false
	}
	_, rest, ok := strings.Cut(f[len(prefix):], "/")
	return rest, ok && rest != ""
}

// matches reports whether the topic name (or every topic of the filter)
// matches the MQTT filter (pattern).
func matches(filter, name string) bool {
	if strings.HasPrefix(name, "$") && (strings.HasPrefix(filter, "+") || strings.HasPrefix(filter, "#")) {
		return false // [MQTT-4.7.2-1]
	}
	return covers(filter, name)
}

// covers reports whether every topic matched by filter f is matched by
// pattern p, so that a service account cannot widen its reach with wildcards.
func covers(p, f string) bool {
	pl, fl := strings.Split(p, "/"), strings.Split(f, "/")
	for i, pp := range pl {
		if pp == "#" {
			return true
		}
		if i >= len(fl) {
			return false
		}
		switch fp := fl[i]; {
		case fp == "#":
			return false
		case pp == "+":
		case fp != pp:
			return false
		}
	}
	return len(fl) == len(pl)
}
