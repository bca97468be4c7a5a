// Package services answers, from the live twin, which public services each
// office offers right now and, when one is not available, why and until
// when. Its catalogue is a versioned data file (catalogue.yaml) validated
// at load.
package services

import (
	"time"

	"github.com/polis-platform/polis/twin/registry"
)

// Channel is how a citizen gets a service.
type Channel string

const (
	ChannelTotem     Channel = "totem"     // self-service at the totem
	ChannelCounter   Channel = "counter"   // at the counter, during opening hours
	ChannelLocker    Channel = "locker"    // parcel locker
	ChannelATM       Channel = "atm"       // advanced ATM
	ChannelCharger   Channel = "charger"   // EV charger
	ChannelCoworking Channel = "coworking" // coworking space
)

// Channels lists every channel, in the order the catalogue's schema names
// them.
var Channels = []Channel{ChannelTotem, ChannelCounter, ChannelLocker, ChannelATM, ChannelCharger, ChannelCoworking}

// Service is one entry of the catalogue.
type Service struct {
	ID          string    `json:"id" yaml:"id"`
	Name        string    `json:"name" yaml:"name"`               // Italian
	Description string    `json:"description" yaml:"description"` // Italian
	Category    string    `json:"category" yaml:"category"`
	Channels    []Channel `json:"channels" yaml:"channels"`             // in order of preference
	Needs       []string  `json:"needs,omitempty" yaml:"needs"`         // asset types
	Documents   []string  `json:"documents,omitempty" yaml:"documents"` // Italian
	// Sites are the kinds of site that offer the service (post_office,
	// coworking).
	Sites []registry.SiteKind `json:"sites" yaml:"sites"`
	// Variants are the forms of the service (request, renewal, duplicate;
	// the kinds of certificate), each with the documents it adds.
	Variants []Variant `json:"variants,omitempty" yaml:"variants"`
	// NeedsFreeCompartment: the locker must have a free compartment (a
	// drop-off), not merely be online (a pickup).
	NeedsFreeCompartment bool `json:"needs_free_compartment,omitempty" yaml:"needs_free_compartment"`
}

// Variant is one form of a service.
type Variant struct {
	ID        string   `json:"id" yaml:"id"`
	Name      string   `json:"name" yaml:"name"` // Italian
	Documents []string `json:"documents,omitempty" yaml:"documents"`
}

// Availability is whether one service can be had at one office now.
type Availability struct {
	Service   string  `json:"service"`
	Name      string  `json:"name"` // Italian
	Available bool    `json:"available"`
	Channel   Channel `json:"channel,omitempty"` // the channel that serves it now (or would)
	// Reason is a stable code when not available (e.g. "office_closed",
	// "totem_offline", "totem_no_paper", "atm_no_cash"; reasons.go lists
	// them all); Message says it in Italian.
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
	// ExpectedAt is when it is expected back, where known (the office's
	// next opening); zero otherwise.
	ExpectedAt time.Time `json:"expected_at,omitzero"`
	// Channels is the answer of each channel of the service, in the
	// catalogue's order of preference.
	Channels []ChannelAvailability `json:"channels,omitempty"`
}

// ChannelAvailability is whether one channel serves a service now.
type ChannelAvailability struct {
	Channel    Channel   `json:"channel"`
	Available  bool      `json:"available"`
	Reason     string    `json:"reason,omitempty"`
	Message    string    `json:"message,omitempty"`
	ExpectedAt time.Time `json:"expected_at,omitzero"`
}
