package broker

import (
	"strings"

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
	willStatus  bool // its will was a status publish, already ingested
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

// canSubscribe checks a subscription filter: devices read only their own
// desired state; a gateway reads its site's; a service account what its
// patterns cover.
func (p *principal) canSubscribe(filter string) bool {
	switch p.role {
	case roleService:
		for _, f := range p.subscribe {
			if covers(f, filter) {
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

// matches reports whether the topic name matches the MQTT filter.
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
