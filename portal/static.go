package portal

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"sort"
	"strings"
	"time"
)

// static holds the portal's own style sheet and images (committed) and,
// under static/vendor/, the Bootstrap Italia files that
// scripts/portal-assets copies from npm (ignored by git). The vendor folder
// is missing on a clean clone before `make deps`: the portal still builds
// and serves readable pages, and logs that the design system is missing.
// ("all:" so that no file the copy brings is silently left out for its name.)
//
//go:embed all:static
var staticFS embed.FS

// staticPrefix is where the assets are served.
const staticPrefix = "/static/"

// Paths under static/ of the files the design system needs. A build
// without them still serves readable pages (the portal's own style sheet
// and plain HTML), and says so once in the log.
const (
	vendorDir    = "vendor/bootstrap-italia"
	vendorCSS    = vendorDir + "/css/bootstrap-italia.min.css"
	vendorSprite = vendorDir + "/svg/sprites.svg"
	fontsCSS     = "css/fonts.css" // made at start from the fonts present
)

// staticFile is one asset, ready to serve.
type staticFile struct {
	name  string
	body  []byte
	gz    []byte // the body gzipped, for text types; nil otherwise
	hash  string // first 16 hex digits of the body's SHA-256: the URL's version
	ctype string
}

// assets are the embedded static files, by path under static/.
type assets struct {
	files  map[string]*staticFile
	vendor bool // Bootstrap Italia's files are present
}

// font is one face of a font family Bootstrap Italia uses. Its style sheet
// declares no @font-face: the design system's script adds them at run
// time, and the portal runs no script, so the faces are declared here.
type font struct {
	family, file string
	weight       int
	italic       bool
}

var fonts = []font{
	{"Titillium Web", "Titillium_Web/titillium-web-v10-latin-ext_latin-300.woff2", 300, false},
	{"Titillium Web", "Titillium_Web/titillium-web-v10-latin-ext_latin-300italic.woff2", 300, true},
	{"Titillium Web", "Titillium_Web/titillium-web-v10-latin-ext_latin-regular.woff2", 400, false},
	{"Titillium Web", "Titillium_Web/titillium-web-v10-latin-ext_latin-italic.woff2", 400, true},
	{"Titillium Web", "Titillium_Web/titillium-web-v10-latin-ext_latin-600.woff2", 600, false},
	{"Titillium Web", "Titillium_Web/titillium-web-v10-latin-ext_latin-600italic.woff2", 600, true},
	{"Titillium Web", "Titillium_Web/titillium-web-v10-latin-ext_latin-700.woff2", 700, false},
	{"Titillium Web", "Titillium_Web/titillium-web-v10-latin-ext_latin-700italic.woff2", 700, true},
	{"Roboto Mono", "Roboto_Mono/roboto-mono-v13-latin-ext_latin-regular.woff2", 400, false},
	{"Roboto Mono", "Roboto_Mono/roboto-mono-v13-latin-ext_latin-italic.woff2", 400, true},
	{"Roboto Mono", "Roboto_Mono/roboto-mono-v13-latin-ext_latin-700.woff2", 700, false},
	{"Roboto Mono", "Roboto_Mono/roboto-mono-v13-latin-ext_latin-700italic.woff2", 700, true},
	{"Lora", "Lora/lora-v20-latin-ext_latin-regular.woff2", 400, false},
	{"Lora", "Lora/lora-v20-latin-ext_latin-italic.woff2", 400, true},
	{"Lora", "Lora/lora-v20-latin-ext_latin-700.woff2", 700, false},
	{"Lora", "Lora/lora-v20-latin-ext_latin-700italic.woff2", 700, true},
}

// loadAssets reads every file under static/ of fsys, hashes it and
// gzips the text ones, and makes the fonts' style sheet.
func loadAssets(fsys fs.FS) (*assets, error) {
	a := &assets{files: map[string]*staticFile{}}
	err := fs.WalkDir(fsys, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		name := strings.TrimPrefix(p, "static/")
		if path.Base(name) == ".gitkeep" {
			return nil
		}
		a.add(name, body)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading the embedded static files: %w", err)
	}
	_, a.vendor = a.files[vendorCSS]
	var css bytes.Buffer
	css.WriteString("/* Made by the portal at start from the fonts of Bootstrap Italia present in the binary. */\n")
	for _, f := range fonts {
		file, ok := a.files[vendorDir+"/fonts/"+f.file]
		if !ok {
			continue
		}
		style := "normal"
		if f.italic {
			style = "italic"
		}
		fmt.Fprintf(&css, "@font-face{font-family:%q;font-style:%s;font-weight:%d;font-display:swap;src:url(%q) format(\"woff2\")}\n",
			f.family, style, f.weight, a.url(file.name))
	}
	a.add(fontsCSS, css.Bytes())
	return a, nil
}

func (a *assets) add(name string, body []byte) {
	sum := sha256.Sum256(body)
	f := &staticFile{name: name, body: body, hash: hex.EncodeToString(sum[:8])}
	f.ctype = mime.TypeByExtension(path.Ext(name))
	switch path.Ext(name) {
	case ".woff2":
		f.ctype = "font/woff2"
	case ".svg":
		f.ctype = "image/svg+xml"
	case ".css":
		f.ctype = "text/css; charset=utf-8"
	case ".txt", "":
		f.ctype = "text/plain; charset=utf-8"
	}
	if f.ctype == "" {
		f.ctype = "application/octet-stream"
	}
	if strings.HasPrefix(f.ctype, "text/") || f.ctype == "image/svg+xml" {
		var b bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
		zw.Write(body)
		zw.Close()
		if b.Len() < len(body) {
			f.gz = b.Bytes()
		}
	}
	a.files[name] = f
}

// url is the versioned address of a static file: the version changes with
// its content, so that it can be cached for a year. An unknown name is a
// bug of a template; it gets the plain address, which answers 404.
func (a *assets) url(name string) string {
	f, ok := a.files[name]
	if !ok {
		return staticPrefix + name
	}
	return staticPrefix + f.name + "?v=" + f.hash
}

// names lists the asset paths, sorted (for tests).
func (a *assets) names() []string {
	out := make([]string, 0, len(a.files))
	for n := range a.files {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// ServeHTTP serves /static/{name}: a year's caching when the address
// carries the current version, a day otherwise, an ETag either way, gzip
// when the client takes it.
func (a *assets) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f, ok := a.files[strings.TrimPrefix(r.URL.Path, staticPrefix)]
	if !ok {
		http.NotFound(w, r)
		return
	}
	h := w.Header()
	if r.URL.Query().Get("v") == f.hash {
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		h.Set("Cache-Control", "public, max-age=86400")
	}
	h.Set("Content-Type", f.ctype)
	body, etag := f.body, `"`+f.hash+`"`
	if f.gz != nil {
		h.Add("Vary", "Accept-Encoding")
		if acceptsGzip(r) {
			body, etag = f.gz, `"`+f.hash+`-gz"`
			h.Set("Content-Encoding", "gzip")
		}
	}
	h.Set("ETag", etag)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
}

// acceptsGzip reports whether the request's Accept-Encoding lists gzip
// with a non-zero quality.
func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if !strings.EqualFold(strings.TrimSpace(coding), "gzip") {
			continue
		}
		q := strings.ReplaceAll(strings.TrimSpace(params), " ", "")
		return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
	}
	return false
}
