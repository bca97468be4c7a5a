package portal

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/polis-platform/polis/internal/testutil"
)

func TestStaticAssets(t *testing.T) {
	h, _ := testPortal(t)
	for _, name := range h.assets.names() {
		f := h.assets.files[name]
		t.Run(name, func(t *testing.T) {
			w := get(t, h, h.assets.url(name))
			if w.Code != http.StatusOK || !bytes.Equal(w.Body.Bytes(), f.body) {
				t.Fatalf("status %d, %d bytes of %d", w.Code, w.Body.Len(), len(f.body))
			}
			if w.Header().Get("Cache-Control") != "public, max-age=31536000, immutable" {
				t.Errorf("versioned address: Cache-Control %q", w.Header().Get("Cache-Control"))
			}
			if w.Header().Get("Content-Type") == "" || w.Header().Get("ETag") != `"`+f.hash+`"` {
				t.Errorf("Content-Type %q, ETag %q", w.Header().Get("Content-Type"), w.Header().Get("ETag"))
			}
			// Without the version (as fonts.css's own url() would be if it
			// had none): cached for a day only.
			if w := get(t, h, staticPrefix+name); w.Header().Get("Cache-Control") != "public, max-age=86400" {
				t.Errorf("plain address: Cache-Control %q", w.Header().Get("Cache-Control"))
			}
			r := httptest.NewRequest(http.MethodGet, h.assets.url(name), nil)
			r.Header.Set("If-None-Match", w.Header().Get("ETag"))
			w304 := httptest.NewRecorder()
			h.ServeHTTP(w304, r)
			if w304.Code != http.StatusNotModified {
				t.Errorf("If-None-Match: %d, want 304", w304.Code)
			}
		})
	}
}

func TestStaticGzip(t *testing.T) {
	h, _ := testPortal(t)
	r := httptest.NewRequest(http.MethodGet, h.assets.url("css/portal.css"), nil)
	r.Header.Set("Accept-Encoding", "br, gzip;q=0.8")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Header().Get("Content-Encoding") != "gzip" || !strings.HasSuffix(w.Header().Get("ETag"), `-gz"`) || w.Header().Get("Vary") != "Accept-Encoding" {
		t.Fatalf("gzip not served: %v", w.Header())
	}
	zr, err := gzip.NewReader(w.Body)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil || !bytes.Equal(b, h.assets.files["css/portal.css"].body) {
		t.Errorf("the gzipped body is not the file: %v", err)
	}
	if f := h.assets.files["img/favicon.svg"]; f == nil || f.ctype != "image/svg+xml" {
		t.Errorf("favicon: %+v", f)
	}
}

func TestAcceptsGzip(t *testing.T) {
	for _, c := range []struct {
		h    string
		want bool
	}{
		{"gzip", true}, {"gzip, deflate, br", true}, {"br;q=1.0, GZIP;q=0.5", true}, {"gzip;q=0", false}, {"gzip; q=0.000", false},
		{"", false}, {"deflate", false}, {"x-gzip", false},
	} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set("Accept-Encoding", c.h)
		if got := acceptsGzip(r); got != c.want {
			t.Errorf("acceptsGzip(%q) = %v", c.h, got)
		}
	}
}

// TestDesignSystemEmbedded checks the copy of Bootstrap Italia that
// scripts/portal-assets made (make deps): the style sheet without its
// source map, the sprite, the licences, and a @font-face for every face
// with a versioned address.
func TestDesignSystemEmbedded(t *testing.T) {
	h, _ := testPortal(t)
	testutil.Need(t, h.assets.vendor, "Bootstrap Italia is not in this build: run scripts/install-deps (make deps) to install and embed it")
	css := string(h.assets.files[vendorCSS].body)
	if strings.Contains(css, "sourceMappingURL") {
		t.Errorf("the style sheet still names its source map (a request for a file the portal does not serve)")
	}
	for _, name := range []string{vendorSprite, vendorDir + "/LICENSE.txt", vendorDir + "/VERSION"} {
		if _, ok := h.assets.files[name]; !ok {
			t.Errorf("%s is missing", name)
		}
	}
	if v := strings.TrimSpace(string(h.assets.files[vendorDir+"/VERSION"].body)); !strings.HasPrefix(v, "2.18.") {
		t.Errorf("Bootstrap Italia %s, want 2.18.x", v)
	}
	faces := string(h.assets.files[fontsCSS].body)
	if n := strings.Count(faces, "@font-face"); n != len(fonts) {
		t.Errorf("fonts.css declares %d faces, want %d", n, len(fonts))
	}
	for _, m := range regexp.MustCompile(`url\("([^"]+)"\)`).FindAllStringSubmatch(faces, -1) {
		if w := get(t, h, m[1]); w.Code != http.StatusOK || w.Header().Get("Content-Type") != "font/woff2" || !strings.Contains(m[1], "?v=") {
			t.Errorf("%s: %d %q", m[1], w.Code, w.Header().Get("Content-Type"))
		}
	}
	for _, family := range []string{"Titillium Web", "Roboto Mono", "Lora"} {
		if !strings.Contains(faces, `"`+family+`"`) {
			t.Errorf("no face of %s", family)
		}
	}
}
