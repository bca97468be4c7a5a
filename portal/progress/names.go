package progress

import (
	"strings"

	"github.com/polis-platform/polis/italy"
	"github.com/polis-platform/polis/twin/registry"
)

// rome is where the programme's days and months fall.
var rome = italy.Rome

// TypeNames are the Italian names of the asset types, as the portal shows them.
var TypeNames = map[string]string{
	registry.TypeATM:      "ATM evoluto",
	registry.TypeTotem:    "Totem self-service per i servizi della PA",
	registry.TypeLocker:   "Locker per pacchi",
	registry.TypeShowcase: "Vetrina digitale",
	registry.TypeEVC:      "Punto di ricarica per veicoli elettrici",
	registry.TypePV:       "Impianto fotovoltaico",
	registry.TypeEnv:      "Sensori ambientali (smart building)",
	registry.TypeMeter:    "Contatore di energia",
	registry.TypeOutdoor:  "Spazio esterno attrezzato",
	registry.TypeDesk:     "Postazione di lavoro (coworking)",
	registry.TypeRoom:     "Sala riunioni (coworking)",
	registry.GatewayType:  "Gateway di sede",
}

// TypeOrder is the order the portal lists asset types in: what a citizen
// uses first, infrastructure last.
var TypeOrder = []string{
	registry.TypeTotem, registry.TypeATM, registry.TypeLocker, registry.TypeShowcase,
	registry.TypeEVC, registry.TypePV, registry.TypeOutdoor, registry.TypeEnv, registry.TypeMeter,
	registry.TypeDesk, registry.TypeRoom, registry.GatewayType,
}

// TypeName is the Italian name of an asset type, or the type itself.
func TypeName(typ string) string {
	if n, ok := TypeNames[typ]; ok {
		return n
	}
	return typ
}

// regionCodes are ISTAT's region codes (COD_REG, two digits), by the region
// names of ISTAT's lists, which the registry uses.
var regionCodes = map[string]string{
	"Piemonte": "01", "Valle d'Aosta/Vallée d'Aoste": "02", "Lombardia": "03",
	"Trentino-Alto Adige/Südtirol": "04", "Veneto": "05", "Friuli-Venezia Giulia": "06",
	"Liguria": "07", "Emilia-Romagna": "08", "Toscana": "09", "Umbria": "10",
	"Marche": "11", "Lazio": "12", "Abruzzo": "13", "Molise": "14", "Campania": "15",
	"Puglia": "16", "Basilicata": "17", "Calabria": "18", "Sicilia": "19", "Sardegna": "20",
}

// RegionCode is ISTAT's two-digit code of a region name, or "".
func RegionCode(name string) string { return regionCodes[name] }

// ProvinceCode is the ISTAT province code of a comune: the first three
// digits of its six-digit code (the historical province code, e.g. "001"
// for Torino, "111" for Sud Sardegna), or "" for a malformed code.
func ProvinceCode(comune string) string {
	if len(comune) != 6 {
		return ""
	}
	for i := range 6 {
		if comune[i] < '0' || comune[i] > '9' {
			return ""
		}
	}
	return comune[:3]
}

// hoursIT writes opening hours with Italian day names ("lun-ven
// 08:20-13:45; sab 08:20-12:45").
var hoursIT = strings.NewReplacer("Mon", "lun", "Tue", "mar", "Wed", "mer", "Thu", "gio",
	"Fri", "ven", "Sat", "sab", "Sun", "dom")

func openingHoursIT(h *registry.OpeningHours) string {
	if h == nil {
		return ""
	}
	return hoursIT.Replace(h.String())
}
