package portal

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"sync"
	"time"

	"github.com/polis-platform/polis/portal/progress"
)

// maxCachedPages bounds the page cache: the full fleet has some 10,000
// pages (offices, comuni, provinces), most of them rarely read, and a page
// is 15 to 150 KB (and its gzipped copy, about an eighth of it, once
// asked for); the bound keeps the cache under about 200 MB at worst.
const maxCachedPages = 2000

// pageCache keeps the pages rendered from one snapshot. A snapshot is
// immutable, so a page rendered from it stays right until the next one:
// the cache is emptied when the snapshot changes. Pages with live parts
// carry an expiry as well.
type pageCache struct {
	mu    sync.RWMutex
	max   int
	snap  *progress.Snapshot
	pages map[string]*rendered
}

func newPageCache(max int) *pageCache {
	return &pageCache{max: max, pages: map[string]*rendered{}}
}

// get returns the page rendered from snap at key, if it has not expired
// at now.
func (c *pageCache) get(snap *progress.Snapshot, key string, now time.Time) (*rendered, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.snap != snap {
		return nil, false
	}
	p, ok := c.pages[key]
	if ok && !p.expires.IsZero() && !now.Before(p.expires) {
		return nil, false
	}
	return p, ok
}

// put keeps p as the page at key for snap. When the cache is full it
// drops the expired pages and, if none was, one page at random (Go's map
// order): random replacement keeps the popular pages in without the
// bookkeeping of an LRU, and no burst of rare pages (offices, each with
// its own address) can shut the popular ones out.
func (c *pageCache) put(snap *progress.Snapshot, key string, p *rendered, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.snap != snap {
		c.snap = snap
		c.pages = map[string]*rendered{}
	}
	if c.max <= 0 {
		return
	}
	if _, ok := c.pages[key]; !ok && len(c.pages) >= c.max {
		for k, old := range c.pages {
			if !old.expires.IsZero() && !now.Before(old.expires) {
				delete(c.pages, k)
			}
		}
		for k := range c.pages {
			if len(c.pages) < c.max {
				break
			}
			delete(c.pages, k)
		}
	}
	c.pages[key] = p
}

// bodyETag is a strong validator of a page's bytes.
func bodyETag(b []byte) string {
	sum := sha256.Sum256(b)
	return `"` + hex.EncodeToString(sum[:12]) + `"`
}

// etagMatch reports whether an If-None-Match header matches etag (weak
// comparison, as RFC 9110 asks for If-None-Match).
func etagMatch(header, etag string) bool {
	if header == "" {
		return false
	}
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || strings.TrimPrefix(t, "W/") == etag {
			return true
		}
	}
	return false
}
