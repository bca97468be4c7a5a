// Package broker embeds mochi-mqtt: it authenticates devices against the
// registry, binds each client id to the principal whose session it is,
// enforces the topic ACLs of docs/design.md, and hands each accepted publish
// to ingest, acknowledging QoS 1 only once Kafka has the record. Its hook
// also makes up for what mochi v2.7.9 does not do as MQTT says (see
// packetid.go, OnPacketRead, OnPacketEncode and nack); conformance_test.go
// holds it to what mosquitto does.
package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/polis-platform/polis/ingest"
)

// DeviceAuth checks a device's username (SITE/ASSET) and secret and returns
// its asset type.
type DeviceAuth func(username string, secret []byte) (assetType string, ok bool)

// Ingester takes publishes and connection changes. StatusAsync hands the
// record over before it returns (records keep the order they were handed
// over in) and calls done once with Kafka's answer.
type Ingester interface {
	Handle(ctx context.Context, msg ingest.Message) (ingest.Outcome, *ingest.Rejection, error)
	Status(ctx context.Context, site, asset, status, cause string, at time.Time) error
	StatusAsync(ctx context.Context, site, asset, status, cause string, at time.Time, done func(error))
}

// Defaults of Options, used for a zero field.
const (
	DefaultAddr          = "127.0.0.1:1883" // TCP listener
	DefaultMaxPacket     = 1 << 20          // bytes
	DefaultIngestTimeout = 10 * time.Second
)

// refusalLogEvery is how often a refusal is logged per reason.
const refusalLogEvery = time.Second

// Options configure the broker.
type Options struct {
	Addr      string // TCP, default DefaultAddr
	WSAddr    string // WebSocket; empty = off
	TLSAddr   string // TCP+TLS; needs TLS
	TLS       *tls.Config
	Devices   DeviceAuth
	Accounts  []Account
	Ingest    Ingester
	MaxPacket uint32 // MQTT packet limit, default DefaultMaxPacket
	// IngestTimeout bounds how long a publish waits for Kafka (default
	// DefaultIngestTimeout).
	IngestTimeout time.Duration
	Logger        *slog.Logger
	Registerer    prometheus.Registerer
	// Tuning sizes what mochi keeps per connection; zero fields take
	// DefaultTuning's.
	Tuning Tuning
}

// Tuning sizes mochi's per-connection memory and its work at rest.
type Tuning struct {
	// WritesPending is how many packets may wait for a client's write
	// loop; mochi drops a message to a client whose queue is full.
	WritesPending int32
	// ReadBuffer and WriteBuffer size a connection's read buffer and the
	// threshold of its write batching, in bytes.
	ReadBuffer, WriteBuffer int
	// SysInterval is how often mochi publishes $SYS.
	SysInterval time.Duration
}

// DefaultTuning is what a zero Tuning field takes.
func DefaultTuning() Tuning {
	return Tuning{WritesPending: 1024, ReadBuffer: 1024, WriteBuffer: 2048, SysInterval: time.Second}
}

// MochiDefaults is mochi v2.7.9's own sizing, for comparison.
func MochiDefaults() Tuning {
	return Tuning{WritesPending: 8192, ReadBuffer: 2048, WriteBuffer: 2048, SysInterval: time.Second}
}

func (t Tuning) orDefaults() Tuning {
	d := DefaultTuning()
	if t.WritesPending <= 0 {
		t.WritesPending = d.WritesPending
	}
	if t.ReadBuffer <= 0 {
		t.ReadBuffer = d.ReadBuffer
	}
	if t.WriteBuffer <= 0 {
		t.WriteBuffer = d.WriteBuffer
	}
	if t.SysInterval <= 0 {
		t.SysInterval = d.SysInterval
	}
	return t
}

// Broker is the embedded MQTT server.
type Broker struct {
	o   Options
	srv *mqtt.Server
	log *slog.Logger
	m   *metrics
	// inflight counts publishes waiting for Kafka, so Close can wait for them.
	inflight sync.WaitGroup
}

// New builds a broker; Serve starts it.
func New(o Options) (*Broker, error) {
	if o.Devices == nil || o.Ingest == nil {
		return nil, errors.New("cannot create broker: Devices and Ingest are required")
	}
	if o.Addr == "" {
		o.Addr = DefaultAddr
	}
	if o.MaxPacket == 0 {
		o.MaxPacket = DefaultMaxPacket
	}
	if o.IngestTimeout <= 0 {
		o.IngestTimeout = DefaultIngestTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	for i, a := range o.Accounts {
		if err := a.validate(); err != nil {
			return nil, fmt.Errorf("cannot use service account %d: %w", i+1, err)
		}
	}
	o.Tuning = o.Tuning.orDefaults()
	log := o.Logger.With("component", "broker")
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumPacketSize = o.MaxPacket
	caps.MinimumProtocolVersion = 3 // MQTT 3.1 ("MQIsdp"), 3.1.1 and 5, like mosquitto
	caps.MaximumClientWritesPending = o.Tuning.WritesPending
	// mochi's default (a day) forces expiry on every retained and queued
	// message, also those that set none: a device's desired state would
	// vanish a day after it was published. MQTT's own expiry (an MQTT 5
	// Message Expiry Interval) still applies; queued messages stay bounded
	// by the in-flight limit.
	caps.MaximumMessageExpiryInterval = 0
	srv := mqtt.New(&mqtt.Options{
		Capabilities:             caps,
		InlineClient:             true,
		ClientNetReadBufferSize:  o.Tuning.ReadBuffer,
		ClientNetWriteBufferSize: o.Tuning.WriteBuffer,
		SysTopicResendInterval:   int64(max(o.Tuning.SysInterval/time.Second, 1)),
		Logger:                   slog.New(minLevel{min: mochiLevel(o.Logger), h: o.Logger.Handler()}).With("component", "mochi"),
	})
	b := &Broker{o: o, srv: srv, log: log, m: newMetrics(o.Registerer, srv)}
	h := &hook{b: b, principals: map[*mqtt.Client]*principal{}, sessions: map[string]*session{}}
	if err := srv.AddHook(h, nil); err != nil {
		return nil, fmt.Errorf("cannot add broker hook: %w", err)
	}
	if err := srv.AddListener(listeners.NewTCP(listeners.Config{Type: "tcp", ID: "tcp", Address: o.Addr})); err != nil {
		return nil, fmt.Errorf("cannot listen for MQTT on %s: %w", o.Addr, err)
	}
	if o.WSAddr != "" {
		if err := srv.AddListener(listeners.NewWebsocket(listeners.Config{Type: "ws", ID: "ws", Address: o.WSAddr})); err != nil {
			return nil, fmt.Errorf("cannot listen for MQTT over WebSocket on %s: %w", o.WSAddr, err)
		}
	}
	if o.TLSAddr != "" {
		if o.TLS == nil {
			return nil, errors.New("cannot listen for MQTT over TLS: no certificate configured")
		}
		if err := srv.AddListener(listeners.NewTCP(listeners.Config{Type: "tcp", ID: "tls", Address: o.TLSAddr, TLSConfig: o.TLS})); err != nil {
			return nil, fmt.Errorf("cannot listen for MQTT over TLS on %s: %w", o.TLSAddr, err)
		}
	}
	return b, nil
}

// Serve starts the listeners and returns; Close stops them.
func (b *Broker) Serve() error {
	if err := b.srv.Serve(); err != nil {
		return fmt.Errorf("cannot start MQTT broker: %w", err)
	}
	b.log.Info("MQTT broker listening", "addr", b.Addr(), "ws", b.o.WSAddr, "tls", b.o.TLSAddr)
	return nil
}

// Run serves until ctx ends, then stops accepting and waits for the
// publishes in flight (Close).
func (b *Broker) Run(ctx context.Context) error {
	if err := b.Serve(); err != nil {
		return err
	}
	<-ctx.Done()
	return b.Close()
}

// Addr returns the bound TCP address (useful with port 0).
func (b *Broker) Addr() string {
	if l, ok := b.srv.Listeners.Get("tcp"); ok {
		return l.Address()
	}
	return b.o.Addr
}

// Publish sends a message from the platform itself (desired state), retained
// when asked; it bypasses ACLs.
func (b *Broker) Publish(topic string, payload []byte, retain bool, qos byte) error {
	if err := b.srv.Publish(topic, payload, retain, qos); err != nil {
		return fmt.Errorf("cannot publish to %s: %w", topic, err)
	}
	return nil
}

// Close stops accepting connections and disconnects clients. Publishes being
// ingested finish first: each waits for Kafka inside the client's read loop.
func (b *Broker) Close() error {
	// mochi's own Close (v2.7.9) can deadlock: Clients.GetByListener takes
	// the read lock twice, and a disconnecting client's Delete waiting for
	// the write lock in between blocks both forever. Close the listeners
	// with a closer that takes the lock once, which also waits for every
	// client goroutine; mochi's Close then has no clients left to race with.
	b.srv.Listeners.CloseAll(func(listener string) {
		for _, cl := range b.srv.Clients.GetAll() {
			if cl.Net.Listener == listener && !cl.Closed() {
				_ = b.srv.DisconnectClient(cl, packets.ErrServerShuttingDown)
			}
		}
	})
	err := b.srv.Close()
	done := make(chan struct{})
	go func() { b.inflight.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(b.o.IngestTimeout):
		b.log.Warn("stopped waiting for publishes in flight to Kafka")
	}
	if err != nil {
		return fmt.Errorf("cannot stop MQTT broker: %w", err)
	}
	return nil
}

// mochiLevel is Error, or Debug when the platform logs at Debug.
func mochiLevel(l *slog.Logger) slog.Level {
	if l.Enabled(context.Background(), slog.LevelDebug) {
		return slog.LevelDebug
	}
	return slog.LevelError
}

type hook struct {
	mqtt.HookBase
	b  *Broker
	mu sync.Mutex
	// principals holds who each mochi client is, from its CONNECT until its
	// session ends: a persistent session keeps its principal while offline,
	// since mochi checks the ACL of every message it queues for it.
	principals map[*mqtt.Client]*principal
	// sessions holds, per client id, the principal that opened the session
	// and the connection that carries it now.
	sessions map[string]*session
}

// session is whose a client id is: the username of the principal that opened
// it, and the mochi client (connection) that currently carries it.
type session struct {
	user string
	cl   *mqtt.Client
	ids  *packetIDs
}

func (h *hook) ID() string { return "polis" }

func (h *hook) Provides(b byte) bool {
	switch b {
	case mqtt.OnConnect, mqtt.OnConnectAuthenticate, mqtt.OnACLCheck, mqtt.OnPublish, mqtt.OnSessionEstablished,
		mqtt.OnDisconnect, mqtt.OnWillSent, mqtt.OnSubscribe, mqtt.OnSubscribed, mqtt.OnClientExpired,
		mqtt.OnPacketRead, mqtt.OnPacketEncode:
		return true
	}
	return false
}

func (h *hook) principal(cl *mqtt.Client) *principal {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.principals[cl]
}

// OnConnect authenticates the client and binds its client id to it. mochi
// calls it before OnConnectAuthenticate, which then only tells whether a
// principal was recorded; a client id held by another principal is refused
// here, with its own CONNACK code, since OnConnectAuthenticate can only
// answer "bad username or password".
func (h *hook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	user, secret := string(pk.Connect.Username), pk.Connect.Password
	p, ok := h.b.authenticate(user, secret)
	if !ok {
		h.b.refuse("bad_credentials", "client", cl.ID, "username", user, "remote", cl.Net.Remote)
		return nil
	}
	if pk.Connect.WillFlag && !p.canPublish(pk.Connect.WillTopic) {
		h.b.refuse("will_topic", "client", cl.ID, "username", user, "topic", pk.Connect.WillTopic)
		return nil
	}
	if holder, ok := h.claim(cl, user, p, pk.Connect.Clean); !ok {
		h.b.refuse("client_id_taken", "client", cl.ID, "principal", p.String(), "holder", holder, "remote", cl.Net.Remote)
		// 0x85 Client Identifier not valid; mochi sends 0x02 Identifier
		// rejected to MQTT 3.1 and 3.1.1 clients.
		if err := h.b.srv.SendConnack(cl, packets.ErrClientIdentifierNotValid, false, nil); err != nil {
			return fmt.Errorf("refuse client id: %w", err)
		}
		return packets.ErrClientIdentifierNotValid
	}
	return nil
}

// claim binds the client id to the principal: a session that is free, or
// already the principal's own, is taken; one held by another principal (or
// by mochi's inline client) is not. A session is held while mochi keeps it,
// connected or persistent, and while its first connection is being set up.
func (h *hook) claim(cl *mqtt.Client, user string, p *principal, clean bool) (holder string, ok bool) {
	existing, live := h.b.srv.Clients.Get(cl.ID)
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.sessions[cl.ID]
	if s != nil && s.user != user && (live || !s.cl.Closed()) {
		return s.user, false
	}
	if live && string(existing.Properties.Username) != user {
		if existing.Net.Inline {
			return "inline client", false
		}
		return string(existing.Properties.Username), false
	}
	p.ids = newPacketIDs()
	if s != nil && s.user == user {
		p.prev = s.cl
		if !clean {
			p.ids = s.ids // a QoS 2 flow may span the reconnect
		}
	}
	h.sessions[cl.ID] = &session{user: user, cl: cl, ids: p.ids}
	h.principals[cl] = p
	return "", true
}

// current reports whether cl carries its client id's session; one taken
// over by a newer connection does not. Called with h.mu held.
func (h *hook) current(cl *mqtt.Client) bool {
	s := h.sessions[cl.ID]
	return s != nil && s.cl == cl
}

func (h *hook) OnConnectAuthenticate(cl *mqtt.Client, _ packets.Packet) bool {
	return h.principal(cl) != nil
}

func (h *hook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	p := h.principal(cl)
	if p == nil {
		return false
	}
	if write {
		if p.canPublish(topic) {
			return true
		}
		h.b.refuse("acl_publish", "client", cl.ID, "principal", p.String(), "topic", topic)
		return false
	}
	// mochi asks for each filter of a SUBSCRIBE, and again for each message
	// before it delivers it (or queues it for an offline persistent session).
	if p.canSubscribe(topic) {
		return true
	}
	h.mu.Lock()
	subscribing := slices.Contains(p.subscribing, topic)
	h.mu.Unlock()
	if subscribing {
		h.b.refuse("acl_subscribe", "client", cl.ID, "principal", p.String(), "filter", topic)
	}
	return false
}

// OnSubscribe notes the filters being subscribed, so that OnACLCheck tells a
// refused subscription (counted) from a message not delivered.
func (h *hook) OnSubscribe(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	h.mu.Lock()
	defer h.mu.Unlock()
	if p := h.principals[cl]; p != nil {
		p.subscribing = p.subscribing[:0]
		for _, f := range pk.Filters {
			p.subscribing = append(p.subscribing, f.Filter)
		}
	}
	return pk
}

func (h *hook) OnSubscribed(cl *mqtt.Client, _ packets.Packet, _ []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if p := h.principals[cl]; p != nil {
		p.subscribing = p.subscribing[:0]
	}
}

func (h *hook) OnSessionEstablished(cl *mqtt.Client, pk packets.Packet) {
	h.mu.Lock()
	p := h.principals[cl]
	if p != nil && p.prev != nil {
		// The session was taken over from an earlier connection of the same
		// principal; if that one had already ended (a persistent session
		// offline), nothing else will forget it.
		if pp := h.principals[p.prev]; pp != nil && pp.ended {
			delete(h.principals, p.prev)
		}
		p.prev = nil
	}
	h.mu.Unlock()
	if p == nil || p.role == roleService {
		return
	}
	// mochi reads the client's packets only once this returns: waiting for
	// Kafka here held every device's first PUBLISH (and PINGREQ) behind a
	// produce round trip. The record is handed over now, so it still comes
	// before the device's own records and its offline status; Close waits for
	// the answer like for a publish in flight.
	ctx, cancel := context.WithTimeout(context.Background(), h.b.o.IngestTimeout)
	h.b.inflight.Add(1)
	h.b.o.Ingest.StatusAsync(ctx, p.site, p.asset, "online", "connect", time.Now(), func(err error) {
		defer h.b.inflight.Done()
		cancel()
		if err != nil {
			h.b.log.Warn("cannot record device online", "principal", p.String(), "err", err)
		}
	})
}

// OnDisconnect records a device offline, unless its own will already said
// so, or a newer connection of the same device took its session over (the
// device is online there).
func (h *hook) OnDisconnect(cl *mqtt.Client, err error, expire bool) {
	h.mu.Lock()
	p := h.principals[cl]
	current := h.current(cl)
	switch {
	case !current || expire:
		delete(h.principals, cl)
		if current {
			delete(h.sessions, cl.ID)
		}
	case p != nil:
		p.ended = true // persistent: keep it for the ACL of queued messages
	}
	willStatus := p != nil && p.willStatus
	h.mu.Unlock()
	if errors.Is(err, packets.ErrPacketTooLarge) {
		h.b.refuse("packet_too_large", "client", cl.ID)
	}
	if p == nil || p.role == roleService || willStatus || !current {
		return
	}
	cause := "clean"
	if err != nil {
		cause = "lost: " + err.Error()
	}
	ctx, cancel := context.WithTimeout(context.Background(), h.b.o.IngestTimeout)
	defer cancel()
	if err := h.b.o.Ingest.Status(ctx, p.site, p.asset, "offline", cause, time.Now()); err != nil {
		h.b.log.Warn("cannot record device offline", "principal", p.String(), "err", err)
	}
}

// OnClientExpired forgets a persistent session mochi let expire.
func (h *hook) OnClientExpired(cl *mqtt.Client) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.principals, cl)
	if h.current(cl) {
		delete(h.sessions, cl.ID)
	}
}

// OnPacketRead refuses a publish on $SYS, and gives the packet ids the
// client numbered their id inside mochi (packetIDs).
func (h *hook) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	switch pk.FixedHeader.Type {
	case packets.Publish:
		if len(pk.TopicName) >= len(mqtt.SysPrefix) && strings.EqualFold(pk.TopicName[:len(mqtt.SysPrefix)], mqtt.SysPrefix) {
			return h.refuseSys(cl, pk)
		}
		if pk.FixedHeader.Qos == 0 {
			return pk, nil
		}
	case packets.Pubrel, packets.Subscribe, packets.Unsubscribe:
	default:
		return pk, nil
	}
	if p := h.principal(cl); p != nil && p.ids != nil {
		pk.PacketID = p.ids.inbound(cl, &pk)
	}
	return pk, nil
}

// refuseSys refuses a publish on $SYS like one the ACL denies. mochi drops
// it without a word, which leaves a QoS 1 or 2 publisher waiting for its
// acknowledgement forever.
func (h *hook) refuseSys(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	h.b.refuse("acl_publish", "client", cl.ID, "topic", pk.TopicName)
	switch {
	case pk.FixedHeader.Qos == 0:
		return pk, nil // mochi drops it
	case cl.Properties.ProtocolVersion < 5:
		return pk, packets.ErrRejectPacket // no negative acknowledgement: the connection is closed
	}
	ack := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: pk.PacketID,
		ReasonCode: packets.ErrNotAuthorized.Code, Properties: packets.Properties{ReasonString: packets.ErrNotAuthorized.Reason}}
	if pk.FixedHeader.Qos == 2 {
		ack.FixedHeader.Type = packets.Pubrec
	}
	if err := cl.WritePacket(ack); err != nil {
		h.b.log.Debug("cannot refuse a publish on $SYS", "client", cl.ID, "err", err)
	}
	return pk, nil // mochi drops it, untouched: its id is the client's
}

// OnPacketEncode gives the client its own packet ids back in the
// acknowledgements of its packets (packetIDs), and answers a QoS 2 PUBLISH
// resent with the id of one already received (its PUBREC was lost) with
// PUBREC success, as [MQTT-4.3.3-10] asks and mosquitto does: mochi answers
// 0x91 (packet identifier in use), which an MQTT 5 client takes as a refusal
// of a message that was in fact accepted and delivered.
func (h *hook) OnPacketEncode(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	switch pk.FixedHeader.Type {
	case packets.Pubrec:
		if pk.ReasonCode == packets.ErrPacketIdentifierInUse.Code {
			pk.ReasonCode = packets.CodeSuccess.Code
			pk.Properties.ReasonString = ""
		}
	case packets.Puback, packets.Pubcomp, packets.Suback, packets.Unsuback:
	default:
		return pk
	}
	if p := h.principal(cl); p != nil && p.ids != nil {
		p.ids.outbound(&pk)
	}
	return pk
}

// OnWillSent ingests a will published on a platform topic, as if the device
// had sent it; unless a newer connection of the same device took its session
// over: mochi, like mosquitto and as MQTT 5 says, still publishes that will
// to subscribers, but the device is online on its new connection.
func (h *hook) OnWillSent(cl *mqtt.Client, pk packets.Packet) {
	h.mu.Lock()
	p, current := h.principals[cl], h.current(cl)
	h.mu.Unlock()
	if p == nil || !current {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), h.b.o.IngestTimeout)
	defer cancel()
	out, _, err := h.b.o.Ingest.Handle(ctx, ingest.Message{Topic: pk.TopicName, Payload: pk.Payload, Received: time.Now(), Client: cl.ID})
	if err != nil {
		h.b.log.Warn("cannot ingest will message", "principal", p.String(), "topic", pk.TopicName, "err", err)
		return
	}
	if out == ingest.Accepted && len(pk.TopicName) > 7 && pk.TopicName[len(pk.TopicName)-7:] == "/status" {
		h.mu.Lock()
		p.willStatus = true
		h.mu.Unlock()
	}
}

func (h *hook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline {
		return pk, nil
	}
	h.b.inflight.Add(1)
	defer h.b.inflight.Done()
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), h.b.o.IngestTimeout)
	defer cancel()
	out, rej, err := h.b.o.Ingest.Handle(ctx, ingest.Message{Topic: pk.TopicName, Payload: pk.Payload, Received: start, Client: cl.ID})
	v5 := cl.Properties.ProtocolVersion == 5
	switch {
	case err != nil:
		// Kafka does not have it: the device must not get a PUBACK.
		h.b.refuse("kafka_unavailable", "client", cl.ID, "topic", pk.TopicName, "err", err)
		if pk.FixedHeader.Qos == 0 {
			return pk, packets.ErrRejectPacket
		}
		if v5 {
			return h.nack(cl, pk, packets.ErrUnspecifiedError)
		}
		// MQTT 3 has no negative PUBACK: drop the connection so the client
		// resends on reconnect.
		cl.Stop(packets.ErrServerUnavailable)
		return pk, packets.ErrRejectPacket
	case out == ingest.DeadLettered:
		h.b.m.deadLettered.Inc()
		h.b.log.Debug("publish dead-lettered", "client", cl.ID, "topic", pk.TopicName, "reason", rej.Code)
		if v5 && pk.FixedHeader.Qos > 0 {
			return h.nack(cl, pk, packets.Code{Code: packets.ErrPayloadFormatInvalid.Code, Reason: rej.Error()})
		}
		// The dead letter is durable; acknowledge so the device moves on.
		return pk, packets.CodeSuccessIgnore
	case out == ingest.Accepted:
		h.b.m.ingested.Inc()
		h.b.m.publishSeconds.Observe(time.Since(start).Seconds())
	}
	return pk, nil
}

// nack refuses an MQTT 5 publish of QoS 1 or 2 with the code. mochi answers
// a code from OnPublish with a PUBACK whatever the QoS; a QoS 2 publish is
// answered with PUBREC, so nack writes that itself and has mochi drop the
// packet (a PUBREC with a failure code ends the flow: no PUBREL follows).
func (h *hook) nack(cl *mqtt.Client, pk packets.Packet, code packets.Code) (packets.Packet, error) {
	if pk.FixedHeader.Qos < 2 {
		return pk, code
	}
	rec := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pubrec}, PacketID: pk.PacketID,
		ReasonCode: code.Code, Properties: packets.Properties{ReasonString: code.Reason}}
	if err := cl.WritePacket(rec); err != nil {
		h.b.log.Debug("cannot send PUBREC", "client", cl.ID, "err", err)
	}
	return pk, packets.ErrRejectPacket
}

func (b *Broker) authenticate(user string, secret []byte) (*principal, bool) {
	for i := range b.o.Accounts {
		a := &b.o.Accounts[i]
		if a.Username == user {
			if !a.check(secret) {
				return nil, false
			}
			return &principal{role: roleService, name: a.Username, publish: a.Publish, subscribe: a.Subscribe}, true
		}
	}
	typ, ok := b.o.Devices(user, secret)
	if !ok {
		return nil, false
	}
	site, asset, _ := cutUser(user)
	r := roleDevice
	if typ == "gateway" {
		r = roleGateway
	}
	return &principal{role: r, site: site, asset: asset}, true
}

func cutUser(u string) (site, asset string, ok bool) {
	for i := 0; i < len(u); i++ {
		if u[i] == '/' {
			return u[:i], u[i+1:], true
		}
	}
	return u, "", false
}

// refuse counts a refusal and logs it, at most once a second per reason so
// that a misbehaving fleet cannot flood the log.
func (b *Broker) refuse(reason string, kv ...any) {
	b.m.refused.WithLabelValues(reason).Inc()
	if _, ok := b.m.refusals.Allow(reason); ok {
		b.log.Warn("MQTT request refused", append([]any{"reason", reason}, kv...)...)
	}
}
