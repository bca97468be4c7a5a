// Package topic parses and builds the MQTT topics of the v1 contract:
// polis/v1/{site}/{asset}/{telemetry|event|state/reported|state/desired|status}.
package topic

import (
	"errors"
	"strings"
)

// Prefix is the root of every platform topic.
const Prefix = "polis/v1/"

// Kind is the last part of a topic.
type Kind string

const (
	Telemetry Kind = "telemetry"
	Event     Kind = "event"
	Reported  Kind = "state/reported"
	Desired   Kind = "state/desired"
	Status    Kind = "status"
)

// Kinds lists every kind a device may publish or read.
var Kinds = []Kind{Telemetry, Event, Reported, Desired, Status}

// Topic is a parsed platform topic.
type Topic struct {
	Site, Asset string
	Kind        Kind
}

// ErrNotPlatform means the topic is outside polis/v1/: brokered, not ingested.
var ErrNotPlatform = errors.New("topic outside " + Prefix)

// Parse splits a platform topic. It does not validate ids; ingest does.
func Parse(t string) (Topic, error) {
	rest, ok := strings.CutPrefix(t, Prefix)
	if !ok {
		return Topic{}, ErrNotPlatform
	}
	site, rest, ok := strings.Cut(rest, "/")
	if !ok || site == "" {
		return Topic{}, errors.New("topic has no site: want " + Prefix + "{site}/{asset}/{kind}")
	}
	asset, kind, ok := strings.Cut(rest, "/")
	if !ok || asset == "" {
		return Topic{}, errors.New("topic has no asset: want " + Prefix + "{site}/{asset}/{kind}")
	}
	for _, k := range Kinds {
		if Kind(kind) == k {
			return Topic{Site: site, Asset: asset, Kind: k}, nil
		}
	}
	return Topic{}, errors.New("unknown topic kind " + quote(kind) + ": want telemetry, event, state/reported, state/desired or status")
}

func quote(s string) string { return `"` + s + `"` }

// String builds the topic.
func (t Topic) String() string { return Prefix + t.Site + "/" + t.Asset + "/" + string(t.Kind) }

// Build returns the topic for site, asset and kind.
func Build(site, asset string, k Kind) string { return Topic{site, asset, k}.String() }
