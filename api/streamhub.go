package api

import (
	"fmt"
	"sync"
	"sync/atomic"
)

// upstreamBuffer is the buffer the hub asks of Live.Subscribe: how far the
// hub's fan-out may lag behind the twin before the twin's side drops
// updates (it never waits for the hub).
const upstreamBuffer = 4096

// streamHub fans the twin's updates out to the open streams. It holds one
// subscription to Live however many streams are open (taken when the first
// opens, given back when the last closes), so the twin, which publishes
// under its own lock, hands each update over once with a send that never
// waits; the fan-out to the streams happens here, on the hub's goroutine,
// outside any lock of the twin. Each stream has a bounded buffer of
// updates that match its filter; a stream whose buffer is full loses the
// update (polis_api_stream_dropped_total) rather than holding up the
// others, and a client that stops reading altogether is disconnected by
// the stream's write timeout (polis_api_stream_slow_total).
//
// The hub also enforces the stream limits: MaxStreams open at once, and
// MaxStreamsPerClient from one client address.
type streamHub struct {
	live      Live
	buffer    int // per stream
	max       int // streams open at once; < 0: no limit
	perClient int // streams from one address; < 0: no limit
	m         *metrics

	mu      sync.Mutex
	clients map[*streamClient]struct{}
	perAddr map[string]int
	stop    chan struct{} // ends the running pump; nil when not subscribed
	cancel  func()        // gives the subscription back
	fanout  atomic.Pointer[[]*streamClient]
}

// streamClient is one open stream, as the hub sees it.
type streamClient struct {
	f       streamFilter
	addr    string
	updates chan Update
	ended   chan struct{} // closed when the twin's subscription ends
	dropped atomic.Uint64
	removed bool // by upstreamEnded; guarded by the hub's mu
}

func newStreamHub(live Live, o Limits, m *metrics) *streamHub {
	h := &streamHub{live: live, buffer: o.StreamBuffer, max: o.MaxStreams, perClient: o.MaxStreamsPerClient, m: m,
		clients: map[*streamClient]struct{}{}, perAddr: map[string]int{}}
	h.fanout.Store(&[]*streamClient{})
	return h
}

// limitError says which stream limit a client hit.
type limitError struct {
	limit string // limitStreams or limitStreamsPerClient
	msg   string
}

// join opens a stream for a client at addr, or says which limit it is
// over.
func (h *streamHub) join(addr string, f streamFilter) (*streamClient, *limitError) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.max >= 0 && len(h.clients) >= h.max {
		return nil, &limitError{limitStreams, fmt.Sprintf(
			"this server has its %d streams open; retry later, or read /api/v1/sites for a snapshot", h.max)}
	}
	if h.perClient >= 0 && h.perAddr[addr] >= h.perClient {
		return nil, &limitError{limitStreamsPerClient, fmt.Sprintf(
			"your address (%s) has %d streams open, the most one client may; close one, or use one stream with a wider filter", addr, h.perClient)}
	}
	c := &streamClient{f: f, addr: addr, updates: make(chan Update, h.buffer), ended: make(chan struct{})}
	h.clients[c] = struct{}{}
	h.perAddr[addr]++
	h.publish()
	h.m.streams.Inc()
	if h.stop == nil {
		updates, cancel := h.live.Subscribe(upstreamBuffer)
		h.stop, h.cancel = make(chan struct{}), cancel
		go h.pump(updates, h.stop)
	}
	return c, nil
}

// leave closes c's stream; the last one gives the subscription back.
func (h *streamHub) leave(c *streamClient) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if c.removed {
		return
	}
	h.remove(c)
	if len(h.clients) == 0 && h.stop != nil {
		close(h.stop)
		h.cancel()
		h.stop, h.cancel = nil, nil
	}
}

// remove forgets c; the caller holds h.mu.
func (h *streamHub) remove(c *streamClient) {
	c.removed = true
	delete(h.clients, c)
	if h.perAddr[c.addr]--; h.perAddr[c.addr] <= 0 {
		delete(h.perAddr, c.addr)
	}
	h.publish()
	h.m.streams.Dec()
}

// publish makes the fan-out see the current streams; the caller holds
// h.mu. The pump reads the list without a lock.
func (h *streamHub) publish() {
	l := make([]*streamClient, 0, len(h.clients))
	for c := range h.clients {
		l = append(l, c)
	}
	h.fanout.Store(&l)
}

// pump hands each update to every stream whose filter it matches, never
// waiting for one: a full buffer loses the update.
func (h *streamHub) pump(updates <-chan Update, stop chan struct{}) {
	for {
		select {
		case <-stop:
			return
		case u, ok := <-updates:
			if !ok {
				h.upstreamEnded(stop)
				return
			}
			for _, c := range *h.fanout.Load() {
				if !c.f.match(&u) {
					continue
				}
				select {
				case c.updates <- u:
				default:
					c.dropped.Add(1)
					h.m.dropped.Inc()
				}
			}
		}
	}
}

// upstreamEnded ends every stream when the twin ends the subscription
// (it is stopping), unless the hub has moved on to a new one since.
func (h *streamHub) upstreamEnded(stop chan struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stop != stop {
		return
	}
	for c := range h.clients {
		h.remove(c)
		close(c.ended)
	}
	h.cancel()
	h.stop, h.cancel = nil, nil
}
