package testutil

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// CutProxy is a TCP proxy on 127.0.0.1 that can lose an answer: armed, it
// lets a request through whole and then, at the first bytes the server sends
// back once the client has sent at least MinRequest bytes, closes the
// connection instead of forwarding them. The server has done the work; the
// client sees a broken connection and cannot tell whether it was done (an
// ambiguous failure, as when a network drops the answer).
type CutProxy struct {
	ln     net.Listener
	target string

	// MinRequest is how many bytes the client must have sent since the
	// last answer for that answer to be cut (0: any answer).
	MinRequest int64
	armed      atomic.Int64 // answers left to cut
	cuts       atomic.Int64

	mu    sync.Mutex
	conns map[net.Conn]bool
	wg    sync.WaitGroup
}

// NewCutProxy forwards a loopback port to target until the test ends.
func NewCutProxy(t testing.TB, target string) *CutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &CutProxy{ln: ln, target: target, conns: map[net.Conn]bool{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

// Addr is the proxy's address.
func (p *CutProxy) Addr() string { return p.ln.Addr().String() }

// Cut arms the proxy to lose the next n answers to requests of at least
// MinRequest bytes.
func (p *CutProxy) Cut(n int) { p.armed.Store(int64(n)) }

// Cuts is how many answers were lost so far.
func (p *CutProxy) Cuts() int { return int(p.cuts.Load()) }

func (p *CutProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns[c], p.conns[s] = true, true
		p.mu.Unlock()
		var sent atomic.Int64 // request bytes since the last answer
		p.wg.Add(2)
		go func() { // client -> server
			defer p.wg.Done()
			buf := make([]byte, 32<<10)
			for {
				n, err := c.Read(buf)
				if n > 0 {
					sent.Add(int64(n))
					if _, werr := s.Write(buf[:n]); werr != nil {
						break
					}
				}
				if err != nil {
					break
				}
			}
			c.Close()
			s.Close()
		}()
		go func() { // server -> client
			defer p.wg.Done()
			buf := make([]byte, 32<<10)
			for {
				n, err := s.Read(buf)
				if n > 0 {
					if sent.Swap(0) >= p.MinRequest && p.armed.Load() > 0 && p.armed.Add(-1) >= 0 {
						p.cuts.Add(1)
						break // the answer is lost
					}
					if _, werr := c.Write(buf[:n]); werr != nil {
						break
					}
				}
				if err != nil {
					break // EOF or closed: the other side ends too
				}
			}
			c.Close()
			s.Close()
		}()
	}
}

func (p *CutProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}
