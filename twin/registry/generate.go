package registry

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"hash"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/polis-platform/polis/credential"
)

// GenerateOptions describes a demo or load-test fleet.
type GenerateOptions struct {
	Sites     int    // post offices
	Coworking int    // coworking spaces
	Seed      uint64 // same seed, same layout: ids, types, placement and details (not secrets)
	// Comuni, if set, places post offices in real comuni under
	// SmallComuneLimit people and coworking spaces in provincial capitals.
	// Without it, plausible synthetic ids are made up.
	Comuni []Comune
	// ReproducibleSecrets derives every secret and salt from Seed and a key
	// written in this file, so that the same seed gives byte-identical
	// registry and credentials. Anyone with the source and the seed then
	// knows every password: for tests and benchmarks that need the same
	// secrets twice, never for a fleet anything can reach. Without it
	// (the default) every secret and salt comes from crypto/rand.
	ReproducibleSecrets bool
}

// Credential is one device's MQTT login, in plaintext, for the credentials file.
type Credential struct {
	Site     string
	Asset    string
	Username string
	Password string
}

// Fleet shares per post office, from docs/design.md's table over 4,800 offices
// (article A). Every office gets totem, showcase, locker, env, meter, gateway
// and one charging point; these pick which offices get the rest. Counts are
// exact (rounded share of Sites), not coin flips, so a fleet of any size
// matches the table.
const (
	shareATM     = 3000.0 / 4800 // advanced ATMs
	shareEVC2    = 200.0 / 4800  // second charging point: 5,000 points over 4,800 offices
	sharePV      = 1000.0 / 4800 // photovoltaic plants
	shareOutdoor = 1000.0 / 4800 // equipped outdoor spaces
)

// Coworking spaces have between minDesks and maxDesks workstations
// (5,000-10,000 over 250 spaces) and 1-3 meeting rooms.
const (
	minDesks = 10
	maxDesks = 40
	maxRooms = 3
)

// Asset types. The id prefix equals the type except for gateways ("gw").
const (
	TypeATM      = "atm"
	TypeTotem    = "totem"
	TypeLocker   = "locker"
	TypeShowcase = "showcase"
	TypeEVC      = "evc"
	TypePV       = "pv"
	TypeEnv      = "env"
	TypeMeter    = "meter"
	TypeOutdoor  = "outdoor"
	TypeDesk     = "desk"
	TypeRoom     = "room"
	gatewayID    = "gw"
)

// AssetTypeOf derives an asset's type from its id ("evc-2" -> "evc",
// "gw-1" -> GatewayType), for callers that have no registry at hand.
func AssetTypeOf(assetID string) string {
	p, _, _ := strings.Cut(assetID, "-")
	if p == gatewayID {
		return GatewayType
	}
	return p
}

// Generate builds a fleet and its plaintext credentials, sorted by username.
// The registry holds only salted hashes.
//
// The layout (sites, assets, details) follows opts.Seed; the secrets are
// fresh from crypto/rand (credential.New) on every call, so two calls with
// the same seed give the same fleet with different passwords. Only with
// opts.ReproducibleSecrets are secrets and salts derived from Seed with
// HMAC-SHA256 under a constant key (test fleets only).
func Generate(opts GenerateOptions) (*Registry, []Credential, error) {
	if opts.Sites < 0 || opts.Coworking < 0 {
		return nil, nil, fmt.Errorf("cannot generate fleet: negative size (sites %d, coworking %d)", opts.Sites, opts.Coworking)
	}
	g := &generator{rng: newRand(opts.Seed, "layout")}
	var sites []*Site
	var err error
	if len(opts.Comuni) > 0 {
		sites, err = g.placeOffices(opts.Sites, opts.Comuni)
		if err == nil {
			var cw []*Site
			cw, err = g.placeCoworking(opts.Coworking, opts.Comuni)
			sites = append(sites, cw...)
		}
	} else {
		sites = g.syntheticSites(opts.Sites, opts.Coworking)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("cannot generate fleet: %w", err)
	}
	g.addAssets(sites)
	decorate(sites, newRand(opts.Seed, "details"))
	// Each on a stream of its own, so that what was drawn before stays.
	contracts(sites, opts.Seed)
	openingHours(sites, newRand(opts.Seed, "hours"))

	var mac hash.Hash
	if opts.ReproducibleSecrets {
		mac = hmac.New(sha256.New, reproducibleSecretKey(opts.Seed))
	}
	var sum, salt []byte
	creds := make([]Credential, 0, len(sites)*12)
	for _, s := range sites {
		for _, a := range s.Assets {
			user := Username(s.ID, a.ID)
			var secret string
			if mac != nil {
				sum = keyed(mac, sum, "secret", user)
				secret = base64.RawURLEncoding.EncodeToString(sum[:18])
				salt = keyed(mac, salt, "salt", user)
				a.SecretHash = credential.HashWithSalt(salt[:16], []byte(secret))
			} else {
				secret = credential.New()
				a.SecretHash = credential.Hash(secret)
			}
			creds = append(creds, Credential{Site: s.ID, Asset: a.ID, Username: user, Password: secret})
		}
	}
	sort.Slice(creds, func(i, j int) bool { return creds[i].Username < creds[j].Username })
	r := New()
	if err := r.Add(sites...); err != nil {
		return nil, nil, fmt.Errorf("cannot generate fleet: %w", err)
	}
	return r, creds, nil
}

type generator struct {
	rng *rand.Rand
}

// newRand returns a ChaCha8 stream for one purpose, so that adding draws for
// one purpose does not shift the others.
func newRand(seed uint64, purpose string) *rand.Rand {
	h := sha256.New()
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], seed)
	h.Write([]byte("polis registry " + purpose + "\x00"))
	h.Write(b[:])
	var s [32]byte
	copy(s[:], h.Sum(nil))
	return rand.New(rand.NewChaCha8(s))
}

// reproducibleSecretKey is the HMAC key of GenerateOptions.ReproducibleSecrets:
// public, since it is in the source.
func reproducibleSecretKey(seed uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], seed)
	k := sha256.Sum256(append([]byte("polis demo secrets, not for production\x00"), b[:]...))
	return k[:]
}

// ReproducibleSecret is the secret GenerateOptions.ReproducibleSecrets gives
// user for seed: what anyone with the source can compute, so that a fleet
// made that way (or by a version that did it by default) can be recognised.
func ReproducibleSecret(seed uint64, user string) string {
	mac := hmac.New(sha256.New, reproducibleSecretKey(seed))
	return base64.RawURLEncoding.EncodeToString(keyed(mac, nil, "secret", user)[:18])
}

// keyed returns HMAC(key, purpose || 0 || user) into dst.
func keyed(mac hash.Hash, dst []byte, purpose, user string) []byte {
	mac.Reset()
	io.WriteString(mac, purpose)
	mac.Write([]byte{0})
	io.WriteString(mac, user)
	return mac.Sum(dst[:0])
}

// placeOffices samples comuni under SmallComuneLimit without replacement,
// with per-region quotas proportional to each region's count of such comuni
// (largest remainder). More offices than comuni wrap around with -2, -3...
func (g *generator) placeOffices(n int, comuni []Comune) ([]*Site, error) {
	if n == 0 {
		return nil, nil
	}
	byRegion := map[string][]Comune{}
	total := 0
	for _, c := range comuni {
		if c.Population < SmallComuneLimit {
			byRegion[c.Region] = append(byRegion[c.Region], c)
			total++
		}
	}
	if total == 0 {
		return nil, fmt.Errorf("no comune under %d inhabitants to place %d post offices", SmallComuneLimit, n)
	}
	regions := sortedKeys(byRegion)
	for _, r := range regions {
		cs := byRegion[r]
		// Sort first so the result does not depend on the input order.
		sort.Slice(cs, func(i, j int) bool { return cs[i].Code < cs[j].Code })
		g.rng.Shuffle(len(cs), func(i, j int) { cs[i], cs[j] = cs[j], cs[i] })
	}
	sites := make([]*Site, 0, n)
	for round := 1; len(sites) < n; round++ {
		take := min(n-len(sites), total)
		weights := make([]int, len(regions))
		for i, r := range regions {
			weights[i] = len(byRegion[r])
		}
		quota := largestRemainder(take, weights)
		for i, r := range regions {
			for _, c := range byRegion[r][:quota[i]] {
				sites = append(sites, siteFor(fmt.Sprintf("PO-%s-%d", c.Code, round), KindPostOffice, c))
			}
		}
	}
	return sites, nil
}

// placeCoworking deals spaces to provincial capitals in a seeded order, one
// per capital per round, numbered per province (CW-<sigla>-<n>).
func (g *generator) placeCoworking(n int, comuni []Comune) ([]*Site, error) {
	if n == 0 {
		return nil, nil
	}
	var caps []Comune
	for _, c := range comuni {
		if c.Capital {
			caps = append(caps, c)
		}
	}
	if len(caps) == 0 {
		return nil, fmt.Errorf("no provincial capital to place %d coworking spaces", n)
	}
	sort.Slice(caps, func(i, j int) bool { return caps[i].Code < caps[j].Code })
	g.rng.Shuffle(len(caps), func(i, j int) { caps[i], caps[j] = caps[j], caps[i] })
	next := map[string]int{}
	sites := make([]*Site, 0, n)
	for i := 0; i < n; i++ {
		c := caps[i%len(caps)]
		next[c.ProvinceCode]++
		sites = append(sites, siteFor(fmt.Sprintf("CW-%s-%d", c.ProvinceCode, next[c.ProvinceCode]), KindCoworking, c))
	}
	return sites, nil
}

func siteFor(id string, kind SiteKind, c Comune) *Site {
	return &Site{
		ID: id, Kind: kind, Comune: c.Code, Name: c.Name, Province: c.ProvinceCode,
		Region: c.Region, Population: c.Population, InnerArea: c.InnerArea, Lat: c.Lat, Lon: c.Lon,
	}
}

// Province codes of the regional capitals, for coworking spaces when no
// comuni list is given.
var syntheticProvinces = []string{
	"AO", "AQ", "BA", "BO", "CA", "CB", "CZ", "FI", "GE", "MI", "NA",
	"PA", "PG", "PZ", "RM", "TN", "TO", "TS", "VE", "AN", "BZ",
}

// syntheticSites makes up ISTAT-shaped codes (3-digit province, 3-digit
// comune number) and coordinates inside Italy's mainland bounding box.
func (g *generator) syntheticSites(offices, coworking int) []*Site {
	const provinces, perProvince = 111, 300
	sites := make([]*Site, 0, offices+coworking)
	codes := g.rng.Perm(provinces * perProvince)
	for i := 0; i < offices; i++ {
		c := codes[i%len(codes)]
		code := fmt.Sprintf("%03d%03d", 1+c/perProvince, 1+c%perProvince)
		sites = append(sites, &Site{
			ID: fmt.Sprintf("PO-%s-%d", code, 1+i/len(codes)), Kind: KindPostOffice, Comune: code,
			Population: 300 + g.rng.IntN(SmallComuneLimit-300),
			Lat:        round6(38 + 8*g.rng.Float64()), Lon: round6(8 + 8*g.rng.Float64()),
		})
	}
	next := map[string]int{}
	for i := 0; i < coworking; i++ {
		p := syntheticProvinces[g.rng.IntN(len(syntheticProvinces))]
		next[p]++
		sites = append(sites, &Site{
			ID: fmt.Sprintf("CW-%s-%d", p, next[p]), Kind: KindCoworking, Province: p,
			Lat: round6(38 + 8*g.rng.Float64()), Lon: round6(8 + 8*g.rng.Float64()),
		})
	}
	return sites
}

// addAssets gives each site its devices. Optional post-office assets go to
// exactly round(share*offices) offices chosen by a seeded permutation.
func (g *generator) addAssets(sites []*Site) {
	var offices []*Site
	for _, s := range sites {
		switch s.Kind {
		case KindPostOffice:
			offices = append(offices, s)
			s.Assets = []*Asset{
				{ID: "totem-1", Type: TypeTotem},
				{ID: "showcase-1", Type: TypeShowcase},
				{ID: "locker-1", Type: TypeLocker},
				{ID: "env-1", Type: TypeEnv},
				{ID: "meter-1", Type: TypeMeter},
				{ID: gatewayID + "-1", Type: GatewayType},
				{ID: "evc-1", Type: TypeEVC},
			}
		case KindCoworking:
			desks := minDesks + g.rng.IntN(maxDesks-minDesks+1)
			rooms := 1 + g.rng.IntN(maxRooms)
			s.Assets = make([]*Asset, 0, desks+rooms+3)
			for i := 1; i <= desks; i++ {
				s.Assets = append(s.Assets, &Asset{ID: fmt.Sprintf("desk-%d", i), Type: TypeDesk})
			}
			for i := 1; i <= rooms; i++ {
				s.Assets = append(s.Assets, &Asset{ID: fmt.Sprintf("room-%d", i), Type: TypeRoom})
			}
			s.Assets = append(s.Assets,
				&Asset{ID: "env-1", Type: TypeEnv},
				&Asset{ID: "meter-1", Type: TypeMeter},
				&Asset{ID: gatewayID + "-1", Type: GatewayType})
		}
	}
	for _, opt := range []struct {
		id, typ string
		share   float64
	}{
		{"atm-1", TypeATM, shareATM},
		{"evc-2", TypeEVC, shareEVC2},
		{"pv-1", TypePV, sharePV},
		{"outdoor-1", TypeOutdoor, shareOutdoor},
	} {
		k := int(math.Round(opt.share * float64(len(offices))))
		for _, i := range g.rng.Perm(len(offices))[:k] {
			offices[i].Assets = append(offices[i].Assets, &Asset{ID: opt.id, Type: opt.typ})
		}
	}
}

// largestRemainder splits total in proportion to weights (Hamilton's
// method), giving no share more than its weight; ties go to the lower
// index, so the split is deterministic.
func largestRemainder(total int, weights []int) []int {
	sum := 0
	for _, w := range weights {
		sum += w
	}
	total = min(total, sum)
	out := make([]int, len(weights))
	if sum == 0 {
		return out
	}
	type rem struct {
		i int
		r int64
	}
	rems := make([]rem, len(weights))
	given := 0
	for i, w := range weights {
		p := int64(total) * int64(w)
		out[i] = int(p / int64(sum))
		given += out[i]
		rems[i] = rem{i, p % int64(sum)}
	}
	sort.SliceStable(rems, func(a, b int) bool { return rems[a].r > rems[b].r })
	for k := 0; given < total; k++ {
		i := rems[k].i
		if out[i] < weights[i] {
			out[i]++
			given++
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func round6(v float64) float64 { return math.Round(v*1e6) / 1e6 }

// The demo fleet's procurement: every supplier below is MADE UP, and its
// name says so ("Fornitore Demo ..."), so that no real company is shown as
// holding a contract it does not hold. The contracts are split as public
// tenders usually are, by category of supply and by geographic lot, and
// each has a CIG of the valid form beginning with DEMO (which no real CIG
// does: real ones are hexadecimal or start with Z, and M and O are not hex
// digits). Each site's works contract is its lot's "Lavori" CIG, and each
// site gets a CUP (DemoCUP).
var supplyCategories = map[string]string{
	TypeTotem: "Chioschi e Vetrine", TypeShowcase: "Chioschi e Vetrine",
	TypeATM:    "ATM",
	TypeLocker: "Locker",
	TypeEVC:    "Energia", TypePV: "Energia", TypeMeter: "Energia",
	TypeEnv: "Smart Building", GatewayType: "Smart Building",
	TypeOutdoor: "Arredi e Spazi", TypeDesk: "Arredi e Spazi", TypeRoom: "Arredi e Spazi",
}

// worksCategory is the category of each site's building works.
const worksCategory = "Lavori"

// Lots, as tenders split Italy: ISTAT's macro-areas, islands with the south.
const (
	lotNord   = "Nord"
	lotCentro = "Centro"
	lotSud    = "Sud e Isole"
)

var lots = []string{lotNord, lotCentro, lotSud}

var regionLot = map[string]string{
	"Piemonte": lotNord, "Valle d'Aosta/Vallée d'Aoste": lotNord, "Lombardia": lotNord,
	"Trentino-Alto Adige/Südtirol": lotNord, "Veneto": lotNord, "Friuli-Venezia Giulia": lotNord,
	"Liguria": lotNord, "Emilia-Romagna": lotNord,
	"Toscana": lotCentro, "Umbria": lotCentro, "Marche": lotCentro, "Lazio": lotCentro,
	"Abruzzo": lotSud, "Molise": lotSud, "Campania": lotSud, "Puglia": lotSud, "Basilicata": lotSud,
	"Calabria": lotSud, "Sicilia": lotSud, "Sardegna": lotSud,
}

// lotOf places a site in a lot by its region; a site without one (a
// synthetic fleet) by its id.
func lotOf(s *Site) string {
	if l, ok := regionLot[s.Region]; ok {
		return l
	}
	h := sha256.Sum256([]byte(s.ID))
	return lots[int(h[0])%len(lots)]
}

// DemoSupplier is the made-up supplier of a category of supply in a lot:
// "Fornitore Demo Energia Nord S.r.l.".
func DemoSupplier(category, lot string) string {
	form := "S.r.l."
	if len(category)%2 == 0 {
		form = "S.p.A."
	}
	return "Fornitore Demo " + category + " " + lot + " " + form
}

// DemoCIG is the CIG of the made-up contract of a category in a lot:
// "DEMO" and six hexadecimal digits derived from the seed, the category
// and the lot.
func DemoCIG(seed uint64, category, lot string) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], seed)
	h := sha256.Sum256(append([]byte("polis demo cig\x00"+category+"\x00"+lot+"\x00"), b[:]...))
	return fmt.Sprintf("DEMO%06X", binary.BigEndian.Uint32(h[:4])>>8)
}

// DemoCUP is a made-up CUP of the valid form, with the layout of a real
// one (the usual example is C11G06000000001): a letter and two
// digits for the body that holds it, a letter for the kind of
// project, two digits for the year of the decision, a five-digit
// progressive number, three digits and a check digit. Here the first four
// are always Z99D (D: demo), the year is 22 for post offices and 23 for
// coworking spaces (the plan's approval, F09, and the coworking spaces'
// announcement, F23, in the facts table), the
// progressive is n, and the check digit is the sum of the digits modulo
// 10, not the real check (which is not published). No real CUP is meant.
func DemoCUP(kind SiteKind, n int) string {
	year := 22
	if kind == KindCoworking {
		year = 23
	}
	body := fmt.Sprintf("Z99D%02d%05d000", year, n%100000)
	sum := 0
	for _, c := range body {
		if c >= '0' && c <= '9' {
			sum += int(c - '0')
		}
	}
	return body + strconv.Itoa(sum%10)
}

// contracts gives every site its CUP and works CIG, and every asset its
// made-up supplier and the CIG of that supplier's contract.
func contracts(sites []*Site, seed uint64) {
	cig := map[[2]string]string{}
	contract := func(category, lot string) string {
		k := [2]string{category, lot}
		if c, ok := cig[k]; ok {
			return c
		}
		cig[k] = DemoCIG(seed, category, lot)
		return cig[k]
	}
	// Numbered by kind in id order: the input order is the generator's.
	ordered := slices.Clone(sites)
	sort.Slice(ordered, func(i, j int) bool { return ordered[i].ID < ordered[j].ID })
	next := map[SiteKind]int{}
	for _, s := range ordered {
		next[s.Kind]++
		lot := lotOf(s)
		s.CUP = DemoCUP(s.Kind, next[s.Kind])
		s.CIG = contract(worksCategory, lot)
		for _, a := range s.Assets {
			cat, ok := supplyCategories[a.Type]
			if !ok {
				cat = worksCategory
			}
			a.Supplier = DemoSupplier(cat, lot)
			a.CIG = contract(cat, lot)
		}
	}
}

// Opening hours of the demo fleet, in the registry's form. Poste's small
// offices mostly open in the morning, six days a week; in the smallest
// comuni many open on alternate days; in the larger of the small comuni
// some stay open in the afternoon. Coworking spaces keep CoworkingHours.
var (
	hoursMorning      = PostOfficeHours
	hoursShortMorning = "Mon-Fri 08:20-13:35; Sat 08:20-12:35"
	hoursFullDay      = "Mon-Fri 08:20-19:05; Sat 08:20-12:35"
	hoursAlternate    = []string{"Mon,Wed,Fri 08:20-13:45", "Tue,Thu 08:20-13:45; Sat 08:20-12:45"}
)

// openingHours gives each post office hours by the size of its comune.
func openingHours(sites []*Site, rng *rand.Rand) {
	for _, s := range sites {
		if s.Kind != KindPostOffice {
			continue
		}
		u := rng.Float64()
		h := hoursMorning
		switch {
		case s.Population > 0 && s.Population < 1000 && u < 0.6:
			h = hoursAlternate[rng.IntN(len(hoursAlternate))]
		case s.Population >= 5000 && u < 0.4:
			h = hoursFullDay
		case u > 0.85:
			h = hoursShortMorning
		}
		s.OpeningHours = MustParseOpeningHours(h)
	}
}
