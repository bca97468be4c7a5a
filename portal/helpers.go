package portal

import (
	"errors"
	"strings"

	"github.com/polis-platform/polis/portal/opendata"
	"github.com/polis-platform/polis/portal/progress"
	"github.com/polis-platform/polis/services"
)

// methodRef is a link to one method of the "come calcoliamo" page.
type methodRef struct {
	Anchor string
	What   string // the figure it explains, for the link's accessible name
}

// methodServices is the portal's own method: the services page answers
// from the services package, not from the snapshot.
const methodServices = "servizi-disponibili"

// portalMethods are the methods the portal adds to progress.Methods.
var portalMethods = []progress.Method{
	{Anchor: methodServices, Title: "Servizi disponibili ora",
		Text: "Per ogni ufficio, il catalogo dei servizi pubblici (carta d'identità, certificati anagrafici, " +
			"prenotazioni sanitarie e gli altri) dice con quale apparato o sportello si ottiene ciascun servizio. " +
			"Un servizio è disponibile ora se l'ufficio è aperto (per lo sportello) e l'apparato che lo offre è in " +
			"servizio, collegato e senza guasti nel gemello digitale in questo momento; altrimenti indichiamo il motivo " +
			"e, quando si conosce, quando tornerà disponibile (per esempio la prossima apertura). La risposta è " +
			"calcolata a ogni visita della pagina."},
}

// methodKeys names the methods the templates cite, so that a template
// says what it means ("working") rather than an anchor.
var methodKeys = map[string]string{
	"levels":     progress.MethodLevels,
	"completed":  progress.MethodCompleted,
	"working":    progress.MethodWorkingNow,
	"projection": progress.MethodPace,
	"trend":      progress.MethodTrend,
	"published":  progress.MethodPublished,
	"energy":     progress.MethodEnergy,
	"free":       progress.MethodCoworking,
	"suppliers":  progress.MethodSuppliers,
	"funding":    progress.MethodFunding,
	"services":   methodServices,
	"targets":    progress.MethodTargets,
	"status":     progress.MethodStatus,
	"reached":    progress.MethodReached,
}

// methodOf resolves a method key, or takes an anchor as it is (a
// Target.Method).
func methodOf(key, what string) methodRef {
	if a, ok := methodKeys[key]; ok {
		key = a
	}
	return methodRef{Anchor: key, What: what}
}

// allMethods is what the method page lists.
func allMethods() []progress.Method {
	return append(append([]progress.Method{}, progress.Methods...), portalMethods...)
}

// dict makes a map of its key, value arguments, to give a partial
// template more than one value.
func dict(kv ...any) (map[string]any, error) {
	if len(kv)%2 != 0 {
		return nil, errors.New("dict: odd number of arguments")
	}
	m := make(map[string]any, len(kv)/2)
	for i := 0; i < len(kv); i += 2 {
		k, ok := kv[i].(string)
		if !ok {
			return nil, errors.New("dict: a key is not a string")
		}
		m[k] = kv[i+1]
	}
	return m, nil
}

// areaHref is the page of an area.
func areaHref(a *progress.Area) string {
	switch a.Kind {
	case progress.AreaRegion:
		return "/regioni/" + a.Slug
	case progress.AreaProvince:
		return "/province/" + a.Slug
	case progress.AreaComune:
		return "/comuni/" + a.Code
	}
	return "/"
}

// workingNow is how many of an area's assets work now.
func workingNow(a *progress.Area) int {
	n := 0
	for _, c := range a.ByType {
		n += c.WorkingNow
	}
	return n
}

// installedAll is how many of an area's assets are installed or later.
func installedAll(a *progress.Area) int {
	n := 0
	for _, c := range a.ByType {
		n += c.Installed
	}
	return n
}

// channelName says in Italian where a service is had.
func channelName(c services.Channel) string {
	switch c {
	case services.ChannelTotem:
		return "al totem"
	case services.ChannelCounter:
		return "allo sportello"
	case services.ChannelLocker:
		return "al locker"
	case services.ChannelATM:
		return "all'ATM"
	case services.ChannelCharger:
		return "al punto di ricarica"
	case services.ChannelCoworking:
		return "nello spazio di coworking"
	case "":
		return "—"
	}
	return string(c)
}

// kwh writes a month's energy: "non disponibile" when unknown (-1), and
// "nessun impianto" when the site has no such asset.
func kwh(v float64, has bool) string {
	switch {
	case !has:
		return "nessun impianto"
	case v < 0:
		return "non disponibile"
	}
	return formatDec(v, 1)
}

// hasType reports whether an office has an asset of that type.
func hasType(o *progress.Office, typ string) bool {
	for _, a := range o.Assets {
		if a.Type == typ {
			return true
		}
	}
	return false
}

// officeDL is the download of the table an office or coworking space is a
// row of (with its energy of the month), filtered to its province when
// the table takes that filter.
func (h *Handler) officeDL(o *progress.Office) (download, error) {
	table := "uffici"
	if o.Kind == "coworking" {
		table = "coworking"
	}
	t, ok := opendata.TableByName(table)
	if !ok {
		return download{}, errors.New("no open data table " + table)
	}
	place := o.ProvinceName
	if place == "" {
		place = o.Province
	}
	if t.HasFilter(opendata.FilterProvincia) && o.Province != "" {
		return h.download(table, opendata.FilterProvincia+"="+progress.Slug(o.Province), "delle sedi, provincia di "+place)
	}
	return h.download(table, "", "delle sedi")
}

// targetValue writes a target's figure: amounts of money as euro.
func targetValue(t progress.Target) string {
	if strings.Contains(t.Measure, "eur") {
		return formatEUR(float64(t.Target))
	}
	return formatInt(int64(t.Target))
}

// targetCurrent writes a target's current count, as targetValue does.
func targetCurrent(t progress.Target) string {
	if strings.Contains(t.Measure, "eur") {
		return formatEUR(float64(t.Current))
	}
	return formatInt(int64(t.Current))
}

// columnType says a column's type in Italian.
func columnType(t opendata.ColumnType) string {
	switch t {
	case opendata.TypeString:
		return "testo"
	case opendata.TypeInteger:
		return "intero"
	case opendata.TypeNumber:
		return "numero"
	case opendata.TypeBoolean:
		return "vero/falso"
	case opendata.TypeDate:
		return "data"
	}
	return string(t)
}

// sourceLabel names a source in running text: its fact id, or its
// publisher for a figure the facts table has no row for.
func sourceLabel(s progress.SourceRef) string {
	switch {
	case s.Fact != "":
		return s.Fact
	case s.Publisher != "":
		return s.Publisher
	}
	return "non indicata"
}
