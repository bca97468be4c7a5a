package registry

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/polis-platform/polis/credential"
	"github.com/polis-platform/polis/twin/lifecycle"
)

// ImportHeader is the header of the provisioning CSV read by ImportCSV and
// written by ExportCSV. One row per asset, with the site's columns repeated
// on every row of the site; a site without assets is one row with the asset
// columns empty.
//
// One file rather than a sites file and an assets file, because a
// provisioning batch is then a single upload that cannot arrive half, every
// device (and its credential) is one line that a refusal can name, and a
// spreadsheet filter on "site" shows a site whole. The cost, repeated site
// columns, is small next to the assets' own columns; rows of one site whose
// site columns disagree are refused, so the repetition cannot hide an error.
//
// Columns (names matter, order does not; every column must be present):
//
//	site           PO-<ISTAT>-<n> or CW-<province>-<n>
//	kind           post_office or coworking (empty: from the id)
//	comune         ISTAT code, 6 digits
//	name, province (2-letter sigla), province_name, region, address
//	population     integer, empty is 0
//	inner_area     SNAI class A..F
//	lat, lon       WGS84 decimal degrees, empty is unknown
//	opening_hours  e.g. "Mon-Fri 08:20-13:45; Sat 08:20-12:45" (Europe/Rome)
//	cup, cig       the project's CUP (15 chars) and the supply contract's CIG (10 chars)
//	workstations, meeting_rooms, event_areas   coworking only; all empty means not given
//	asset          <type>-<n>, empty for a site without assets
//	type           empty: from the id
//	supplier, asset_cig
//	lifecycle      planned, installed, commissioned, operational, faulty or decommissioned
//	installed_at   RFC 3339
//	secret         the device secret in plaintext: hashed on import, never stored;
//	               a row whose secret fails credential.CheckStrength (at least 16
//	               characters, no whitespace, two classes of characters, 8 different
//	               ones) or holds the site id is refused
//	secret_hash    or the hash already made (sha256$salt$hash or bcrypt), taken as given
//	labels         optional column: the site's labels for rule scopes, "tier=pilot;zone=alps"
//
// A row with neither secret nor secret_hash keeps the asset's hash if the
// registry already has it, and otherwise gets a fresh secret, returned in
// ImportReport.Credentials for the credentials file.
const ImportHeader = "site,kind,comune,name,province,province_name,region,population,inner_area,lat,lon," +
	"address,opening_hours,cup,cig,workstations,meeting_rooms,event_areas," +
	"asset,type,supplier,asset_cig,lifecycle,installed_at,secret,secret_hash"

var importColumns = strings.Split(ImportHeader, ",")

// LabelsColumn is the optional column of site labels ("k=v;k2=v2"),
// written last by ExportCSV.
const LabelsColumn = "labels"

// ExportHeader is the header ExportCSV writes: ImportHeader and labels.
const ExportHeader = ImportHeader + "," + LabelsColumn

// siteColumns are the columns that must agree on every row of a site.
var siteColumns = append(importColumns[:18:18], LabelsColumn)

var labelNameRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// ParseLabels reads "k=v;k2=v2" (empty: none).
func ParseLabels(s string) (map[string]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	out := map[string]string{}
	for _, kv := range strings.Split(s, ";") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok || !labelNameRe.MatchString(k) {
			return nil, fmt.Errorf("labels %q: want name=value pairs separated by ';', names of letters, digits and _", s)
		}
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("labels %q: %s given twice", s, k)
		}
		out[k] = v
	}
	return out, nil
}

// FormatLabels writes labels as ParseLabels reads them, sorted by name.
func FormatLabels(l map[string]string) string {
	names := make([]string, 0, len(l))
	for k := range l {
		names = append(names, k)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, k := range names {
		parts[i] = k + "=" + l[k]
	}
	return strings.Join(parts, ";")
}

// ImportOptions tunes ImportCSV.
type ImportOptions struct {
	// Strict refuses the whole file if any row is refused: nothing is added
	// and an error is returned with the report. Without it the good rows are
	// imported and the bad ones listed.
	Strict bool
}

// RefusedRow is one input line that was not imported, and why.
type RefusedRow struct {
	Line   int    `json:"line"`
	ID     string `json:"id"` // SITE/ASSET, SITE, or the ISTAT code
	Reason string `json:"reason"`
}

// ImportReport says what an import did.
type ImportReport struct {
	Sites    int          `json:"sites"`  // sites added or replaced
	Assets   int          `json:"assets"` // assets of those sites
	Refused  []RefusedRow `json:"refused,omitempty"`
	Warnings []RefusedRow `json:"warnings,omitempty"` // imported, but look at these
	Filtered int          `json:"filtered,omitempty"` // rows left out by a filter (ImportComuni)
	// Credentials holds the secrets generated for assets that came without
	// one. They exist nowhere else: write them out (WriteCredentialsCSV).
	Credentials []Credential `json:"-"`
}

// ErrRefused is wrapped by the error of a Strict import that refused rows.
var ErrRefused = errors.New("rows refused")

type importSite struct {
	site  *Site
	line  int
	key   string // site columns joined, to check that later rows agree
	seen  map[string]int
	lines []int // accepted rows
}

type importCred struct {
	site, asset, secret string
}

// ImportCSV reads the provisioning CSV described on ImportHeader into reg.
// Each site in the file replaces the registry's site of that id, assets
// included. A bad row is refused with its line and reason and the rest are
// imported, unless opts.Strict. The error is for what stops the whole file:
// an unreadable header, an I/O error, or a Strict refusal.
func ImportCSV(reg *Registry, r io.Reader, opts ImportOptions) (*ImportReport, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	header, err := cr.Read()
	if err == io.EOF {
		return nil, errors.New("cannot import: empty file, header expected")
	}
	if err != nil {
		return nil, fmt.Errorf("cannot import: %w", err)
	}
	col, err := importHeader(header)
	if err != nil {
		return nil, fmt.Errorf("cannot import: %w", err)
	}
	rep := &ImportReport{}
	sites := map[string]*importSite{}
	var order []*importSite
	var creds []importCred
	tainted := map[string]int{} // site id -> first refused line
	lastErrLine := 0
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			var pe *csv.ParseError
			if !errors.As(err, &pe) || pe.Line <= lastErrLine {
				return nil, fmt.Errorf("cannot import: %w", err)
			}
			lastErrLine = pe.Line
			rep.Refused = append(rep.Refused, RefusedRow{Line: pe.Line, Reason: pe.Err.Error()})
			continue
		}
		line, _ := cr.FieldPos(0)
		get := func(name string) string {
			if i, ok := col[name]; ok {
				return rec[i]
			}
			return "" // an optional column left out
		}
		refuse := func(id, format string, args ...any) {
			rep.Refused = append(rep.Refused, RefusedRow{Line: line, ID: id, Reason: fmt.Sprintf(format, args...)})
			if i := col["site"]; i < len(rec) {
				if _, ok := tainted[rec[i]]; !ok {
					tainted[rec[i]] = line
				}
			}
		}
		if len(rec) != len(header) {
			refuse(rec[0], "%d fields, want %d", len(rec), len(header))
			continue
		}
		s, a, secret, err := parseImportRow(get)
		id := get("site")
		if get("asset") != "" {
			id = Username(id, get("asset"))
		}
		if err != nil {
			refuse(id, "%v", err)
			continue
		}
		if a != nil {
			s.Assets = []*Asset{a}
		}
		if err := s.Validate(); err != nil {
			refuse(id, "%v", err)
			continue
		}
		key := rowKey(get)
		is := sites[s.ID]
		if is == nil {
			is = &importSite{site: s, line: line, key: key, seen: map[string]int{}, lines: []int{line}}
			s.Assets = nil
			sites[s.ID] = is
			order = append(order, is)
		} else if is.key != key {
			refuse(id, "site columns differ from line %d, where site %s is first described", is.line, s.ID)
			continue
		}
		if a == nil {
			continue
		}
		if prev, ok := is.seen[a.ID]; ok {
			refuse(id, "asset listed twice, first on line %d", prev)
			continue
		}
		if is.lines[0] != line {
			is.lines = append(is.lines, line)
		}
		is.seen[a.ID] = line
		switch {
		case secret != "":
			a.SecretHash = credential.Hash(secret)
		case a.SecretHash == "":
			if old, ok := reg.Asset(s.ID, a.ID); ok && old.SecretHash != "" {
				a.SecretHash = old.SecretHash
			} else {
				secret = credential.New()
				a.SecretHash = credential.Hash(secret)
				creds = append(creds, importCred{s.ID, a.ID, secret})
			}
		}
		is.site.Assets = append(is.site.Assets, a)
	}
	// A site replaces the registry's whole, so a site with a refused row is
	// not imported at all: importing the rest would silently drop the
	// refused asset (and its device's login) from the registry.
	kept := order[:0]
	for _, is := range order {
		first, bad := tainted[is.site.ID]
		if !bad {
			kept = append(kept, is)
			continue
		}
		for _, l := range is.lines {
			rep.Refused = append(rep.Refused, RefusedRow{Line: l, ID: is.site.ID,
				Reason: fmt.Sprintf("site %s not imported because line %d of it was refused", is.site.ID, first)})
		}
		for i := 0; i < len(creds); i++ {
			if creds[i].site == is.site.ID {
				creds = append(creds[:i], creds[i+1:]...)
				i--
			}
		}
	}
	order = kept
	sort.SliceStable(rep.Refused, func(i, j int) bool { return rep.Refused[i].Line < rep.Refused[j].Line })
	if opts.Strict && len(rep.Refused) > 0 {
		return rep, fmt.Errorf("cannot import: %d %w in strict mode, nothing imported (first: line %d: %s)",
			len(rep.Refused), ErrRefused, rep.Refused[0].Line, rep.Refused[0].Reason)
	}
	out := make([]*Site, len(order))
	for i, is := range order {
		out[i] = is.site
		rep.Assets += len(is.site.Assets)
	}
	if err := reg.Add(out...); err != nil {
		return rep, fmt.Errorf("cannot import: %w", err)
	}
	rep.Sites = len(out)
	for _, c := range creds {
		rep.Credentials = append(rep.Credentials, Credential{Site: c.site, Asset: c.asset, Username: Username(c.site, c.asset), Password: c.secret})
	}
	return rep, nil
}

func importHeader(header []string) (map[string]int, error) {
	col := make(map[string]int, len(header))
	for i, h := range header {
		h = strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))
		if _, dup := col[h]; dup {
			return nil, fmt.Errorf("line 1: column %q appears twice", h)
		}
		col[h] = i
	}
	for _, c := range importColumns {
		if _, ok := col[c]; !ok {
			return nil, fmt.Errorf("line 1: column %q missing, want the header %q", c, ImportHeader)
		}
	}
	if len(col) != len(importColumns) {
		for _, h := range header {
			if !strings.Contains(","+ImportHeader+","+LabelsColumn+",", ","+strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))+",") {
				return nil, fmt.Errorf("line 1: unknown column %q, want the header %q", h, ImportHeader)
			}
		}
	}
	return col, nil
}

func rowKey(get func(string) string) string {
	var b strings.Builder
	for _, c := range siteColumns {
		b.WriteString(get(c))
		b.WriteByte(0)
	}
	return b.String()
}

// parseImportRow turns one row into a site (without assets), an asset (nil
// for a site-only row) and the plaintext secret, if given. It checks what
// Validate cannot see: number syntax and the secret columns.
func parseImportRow(get func(string) string) (*Site, *Asset, string, error) {
	s := &Site{
		ID: get("site"), Kind: SiteKind(get("kind")), Comune: get("comune"), Name: get("name"),
		Province: get("province"), ProvinceName: get("province_name"), Region: get("region"),
		InnerArea: get("inner_area"), Address: get("address"), CUP: get("cup"), CIG: get("cig"),
	}
	labels, err := ParseLabels(get(LabelsColumn))
	if err != nil {
		return nil, nil, "", err
	}
	s.Labels = labels
	if s.Kind == "" {
		switch {
		case strings.HasPrefix(s.ID, "PO-"):
			s.Kind = KindPostOffice
		case strings.HasPrefix(s.ID, "CW-"):
			s.Kind = KindCoworking
		}
	}
	if s.Population, err = intCell(get, "population"); err != nil {
		return nil, nil, "", err
	}
	for _, c := range []struct {
		name string
		v    *float64
	}{{"lat", &s.Lat}, {"lon", &s.Lon}} {
		if v := get(c.name); v != "" {
			if *c.v, err = strconv.ParseFloat(v, 64); err != nil {
				return nil, nil, "", fmt.Errorf("column %s: %q is not a number", c.name, v)
			}
		}
	}
	if v := get("opening_hours"); v != "" {
		if s.OpeningHours, err = ParseOpeningHours(v); err != nil {
			return nil, nil, "", fmt.Errorf("column opening_hours: %w", err)
		}
	}
	if get("workstations")+get("meeting_rooms")+get("event_areas") != "" {
		c := &Coworking{}
		if c.Workstations, err = intCell(get, "workstations"); err == nil {
			if c.MeetingRooms, err = intCell(get, "meeting_rooms"); err == nil {
				c.EventAreas, err = intCell(get, "event_areas")
			}
		}
		if err != nil {
			return nil, nil, "", err
		}
		s.Coworking = c
	}
	if get("asset") == "" {
		for _, c := range importColumns[19:] {
			if get(c) != "" {
				return nil, nil, "", fmt.Errorf("column %s set on a row without an asset", c)
			}
		}
		return s, nil, "", nil
	}
	a := &Asset{
		ID: get("asset"), Type: get("type"), Supplier: get("supplier"), CIG: get("asset_cig"),
		Lifecycle: lifecycle.State(get("lifecycle")), SecretHash: get("secret_hash"),
	}
	if a.Type == "" {
		a.Type = AssetTypeOf(a.ID)
	}
	if v := get("installed_at"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return nil, nil, "", fmt.Errorf("column installed_at: %q is not an RFC 3339 time", v)
		}
		a.InstalledAt = t.UTC()
	}
	secret := get("secret")
	if secret != "" && a.SecretHash != "" {
		return nil, nil, "", errors.New("both secret and secret_hash given, want one")
	}
	if secret != "" {
		if err := checkImportedSecret(s.ID, secret); err != nil {
			return nil, nil, "", fmt.Errorf("column secret: %w", err)
		}
	}
	return s, a, secret, nil
}

// checkImportedSecret applies credential.CheckStrength to a plaintext secret
// from a CSV, and refuses one that holds its own site id (a username used as
// its password). The error never quotes the secret: refusals are printed
// and answered over the API.
func checkImportedSecret(site, secret string) error {
	if err := credential.CheckStrength(secret); err != nil {
		return err
	}
	if site != "" && strings.Contains(strings.ToLower(secret), strings.ToLower(site)) {
		return fmt.Errorf("secret contains the site id %s", site)
	}
	return nil
}

func intCell(get func(string) string, name string) (int, error) {
	v := get(name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("column %s: %q is not a non-negative integer", name, v)
	}
	return n, nil
}

// ComuniOptions tunes ImportComuni.
type ComuniOptions struct {
	// MaxPopulation keeps comuni with fewer inhabitants than this; 0 means
	// SmallComuneLimit, the programme's "under 15,000".
	MaxPopulation int
	// Filter, if set, replaces MaxPopulation.
	Filter func(Comune) bool
	// AllowMissingCentroid imports comuni that have no centroid, without
	// coordinates, instead of refusing them.
	AllowMissingCentroid bool
}

// ImportComuniFiles is ImportComuni on the two files of shared/data:
// comuni_mappa_ai_2020.csv and comuni_centroidi_openpolis_2023.csv.
func ImportComuniFiles(reg *Registry, comuniPath, centroidsPath string, opts ComuniOptions) (*ImportReport, error) {
	cs, err := LoadComuni(comuniPath)
	if err != nil {
		return nil, fmt.Errorf("cannot import comuni: %w", err)
	}
	cb, err := os.ReadFile(centroidsPath)
	if err != nil {
		return nil, fmt.Errorf("cannot import comuni: %w", err)
	}
	return importComuni(reg, cs, cb, opts)
}

// ImportComuni creates one post office, PO-<code>-1, per comune of an
// ISTAT-layout list (the "Mappa Aree Interne 2020" columns, read by
// LoadComuni) that passes the filter, with comune, name, province, region,
// population, inner-area class and the coordinates from the centroid file.
// The comuni list must be sound as a whole (it is the authority for names);
// per-comune problems are refusals: a code missing from the 2023 centroid
// file (comuni merged after 2020). Centroid names with broken encodings are
// reported as warnings: the names come from the comuni list, so the
// coordinates are still used. An existing site keeps its assets and other
// fields; only the comune fields are refreshed.
func ImportComuni(reg *Registry, comuni, centroids io.Reader, opts ComuniOptions) (*ImportReport, error) {
	cs, err := readComuni(comuni)
	if err != nil {
		return nil, fmt.Errorf("cannot import comuni: %w", err)
	}
	cb, err := io.ReadAll(centroids)
	if err != nil {
		return nil, fmt.Errorf("cannot import comuni: %w", err)
	}
	return importComuni(reg, cs, cb, opts)
}

func importComuni(reg *Registry, cs []Comune, centroidCSV []byte, opts ComuniOptions) (*ImportReport, error) {
	cents, err := readCentroids(bytes.NewReader(centroidCSV))
	if err != nil {
		return nil, fmt.Errorf("cannot import comuni: centroids: %w", err)
	}
	rep := &ImportReport{}
	rep.Warnings, err = centroidNameWarnings(bytes.NewReader(centroidCSV))
	if err != nil {
		return nil, fmt.Errorf("cannot import comuni: centroids: %w", err)
	}
	keep := opts.Filter
	if keep == nil {
		limit := opts.MaxPopulation
		if limit == 0 {
			limit = SmallComuneLimit
		}
		keep = func(c Comune) bool { return c.Population < limit }
	}
	var out []*Site
	for i, c := range cs {
		if !keep(c) {
			rep.Filtered++
			continue
		}
		p, ok := cents[c.Code]
		if !ok && !opts.AllowMissingCentroid {
			rep.Refused = append(rep.Refused, RefusedRow{Line: i + 2, ID: c.Code,
				Reason: fmt.Sprintf("comune %s (%s) has no centroid: not in the 2023 boundaries, merged or moved since 2020", c.Code, c.Name)})
			continue
		}
		id := "PO-" + c.Code + "-1"
		s := &Site{ID: id, Kind: KindPostOffice}
		if old, ok := reg.Site(id); ok {
			cp := *old
			s = &cp
		}
		s.Comune, s.Name, s.Province, s.ProvinceName = c.Code, c.Name, c.ProvinceCode, c.Province
		s.Region, s.Population, s.InnerArea, s.Lat, s.Lon = c.Region, c.Population, c.InnerArea, p.Lat, p.Lon
		if err := s.Validate(); err != nil {
			rep.Refused = append(rep.Refused, RefusedRow{Line: i + 2, ID: c.Code, Reason: err.Error()})
			continue
		}
		out = append(out, s)
	}
	if err := reg.Add(out...); err != nil {
		return rep, fmt.Errorf("cannot import comuni: %w", err)
	}
	rep.Sites = len(out)
	for _, s := range out {
		rep.Assets += len(s.Assets)
	}
	return rep, nil
}

// centroidNameWarnings flags names that the source damaged: invalid UTF-8,
// control characters (a stray C1 byte), or a "?" standing for a lost letter.
func centroidNameWarnings(r io.Reader) ([]RefusedRow, error) {
	cr, col, err := openTable(r, []string{"pro_com_t", "comune"})
	if err != nil {
		return nil, err
	}
	var out []RefusedRow
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		line, _ := cr.FieldPos(0)
		name := rec[col["comune"]]
		if !cleanText(name) || strings.Contains(name, "?") {
			out = append(out, RefusedRow{Line: line, ID: strings.TrimSpace(rec[col["pro_com_t"]]),
				Reason: fmt.Sprintf("centroid file: name %q looks broken (encoding damage in the source); coordinates used, name taken from the comuni list", name)})
		}
	}
}
