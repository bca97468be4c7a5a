package opendata

import (
	"cmp"
	"fmt"
	"iter"
	"math"
	"slices"
	"strings"

	"github.com/polis-platform/polis/portal/progress"
)

// assetTypes are the asset types in the portal's order, each with a group
// of columns in the wide tables (regioni, province, comuni, fornitori,
// progetti). progress owns the list and the Italian names; a type missing
// from it still appears in apparati (its type is a string there).
func assetTypes() []struct{ code, name string } {
	out := make([]struct{ code, name string }, len(progress.TypeOrder))
	for i, t := range progress.TypeOrder {
		out[i].code, out[i].name = t, progress.TypeName(t)
	}
	return out
}

// The EU data themes and frequencies the tables use.
const (
	themeGOVE = "GOVE" // government and public sector
	themeECON = "ECON" // economy and finance
	themeREGI = "REGI" // regions and cities
	themeTECH = "TECH" // science and technology
	themeENER = "ENER" // energy

	updatesContinuously = "UPDATE_CONT" // computed from the live twin
	updatesIrregularly  = "IRREG"       // public facts, published now and then
)

// The descriptions that recur.
const (
	descDate     = " (data nel fuso orario italiano, AAAA-MM-GG; vuota se non nota)"
	descList     = " (elenco separato da |)"
	descSlug     = "slug della regione nell'URL del portale (minuscole, senza accenti, parole unite da trattini)"
	descSigla    = "sigla della provincia (es. BZ)"
	descLifecyle = "stato nel ciclo di vita: planned (pianificato), installed (installato), commissioned (collaudato), operational (operativo), faulty (guasto), decommissioned (dismesso)"
)

// specs are the tables, in the order of the index.
var specs = []spec{
	obiettivi, andamentoObiettivi, dichiarazioni, finanziamento,
	regioni, province, comuni, andamento,
	uffici, coworking, progetti, apparati, fornitori,
}

func specByName(name string) spec {
	for _, s := range specs {
		if s.table().Name == name {
			return s
		}
	}
	return nil
}

// each yields a pointer to every element of xs, in order.
func each[T any](xs []T) iter.Seq[*T] {
	return func(yield func(*T) bool) {
		for i := range xs {
			if !yield(&xs[i]) {
				return
			}
		}
	}
}

// nonNil yields the non-nil elements of xs that keep says to keep.
func nonNil[T any](xs []*T, keep func(*T) bool) iter.Seq[*T] {
	return func(yield func(*T) bool) {
		for _, x := range xs {
			if x != nil && (keep == nil || keep(x)) && !yield(x) {
				return
			}
		}
	}
}

func sourceFields[R any](src func(R) *progress.SourceRef) []field[R] {
	return []field[R]{
		{Column{"fonte", TypeString, "identificativo del fatto pubblico da cui viene la cifra (riga della tabella dei fatti, es. F16)"}, func(r R) value { return optStr(src(r).Fact) }},
		{Column{"fonte_url", TypeString, "indirizzo della fonte pubblica"}, func(r R) value { return optStr(src(r).URL) }},
		{Column{"fonte_editore", TypeString, "chi ha pubblicato la fonte"}, func(r R) value { return optStr(src(r).Publisher) }},
		{Column{"fonte_data", TypeDate, "data della fonte" + descDate}, func(r R) value { return date(src(r).Date) }},
	}
}

var obiettivi = &tableSpec[*progress.Target]{
	meta: Table{
		Name:  "obiettivi",
		Title: "Obiettivi del programma e avanzamento",
		Description: "Gli obiettivi del programma Polis (uffici, ATM, totem, locker, vetrine, colonnine, impianti fotovoltaici, " +
			"smart building, spazi esterni, coworking e postazioni; scadenza) con la fonte di ciascuno, e il valore che il gemello " +
			"digitale conta oggi. Dove le fonti danno cifre diverse per la stessa misura, ogni cifra è una riga con la sua fonte " +
			"e la colonna in_disaccordo_con elenca le altre.",
		Formats: []string{FormatCSV, FormatJSON},
		Themes:  []string{themeGOVE},
		Updates: updatesContinuously,
	},
	fields: slices.Concat([]field[*progress.Target]{
		{Column{"id", TypeString, "identificativo dell'obiettivo"}, func(t *progress.Target) value { return str(t.ID) }},
		{Column{"titolo", TypeString, "descrizione dell'obiettivo"}, func(t *progress.Target) value { return str(t.Title) }},
		{Column{"linea", TypeString, "linea del programma: programma, sportello_unico o spazi_per_italia"}, func(t *progress.Target) value { return optStr(string(t.Line)) }},
		{Column{"misura", TypeString, "che cosa si conta (es. atm_installed, offices_completed); righe con la stessa misura sono cifre diverse per la stessa cosa"}, func(t *progress.Target) value { return str(t.Measure) }},
		{Column{"obiettivo", TypeInteger, "valore da raggiungere secondo la fonte"}, func(t *progress.Target) value { return integer(t.Target) }},
		{Column{"scadenza", TypeDate, "data entro cui raggiungerlo" + descDate}, func(t *progress.Target) value { return date(t.Deadline) }},
		{Column{"valore_attuale", TypeInteger, "valore contato oggi dal gemello digitale"}, func(t *progress.Target) value { return integer(t.Current) }},
		{Column{"valore_atteso", TypeInteger, "valore che un ritmo costante dall'avvio dei lavori alla scadenza chiederebbe oggi"}, func(t *progress.Target) value { return integer(t.Expected) }},
		{Column{"percentuale", TypeNumber, "valore attuale in percento dell'obiettivo (una cifra decimale; può superare 100)"}, func(t *progress.Target) value { return number(t.Percent) }},
		{Column{"stato", TypeString, "achieved (raggiunto), on_track (in linea), at_risk (a rischio: sotto il ritmo lineare), late (scaduto e non raggiunto)"}, func(t *progress.Target) value { return optStr(t.Status) }},
		{Column{"valore_del", TypeDate, "data in cui il conteggio ha raggiunto il valore attuale, dagli eventi del ciclo di vita" + descDate}, func(t *progress.Target) value { return date(t.ReachedOn) }},
		{Column{"raggiunto_il", TypeDate, "data in cui il conteggio ha raggiunto l'obiettivo" + descDate}, func(t *progress.Target) value { return date(t.AchievedOn) }},
		{Column{"ritmo_giornaliero", TypeNumber, "crescita media al giorno del conteggio negli ultimi 180 giorni"}, func(t *progress.Target) value { return number(t.Pace) }},
		{Column{"data_prevista", TypeDate, "data in cui l'obiettivo sarebbe raggiunto al ritmo attuale; vuota se già raggiunto o se il ritmo è zero" + descDate}, func(t *progress.Target) value { return date(t.Projected) }},
	}, sourceFields(func(t *progress.Target) *progress.SourceRef { return &t.Source }),
		[]field[*progress.Target]{
			{Column{"in_disaccordo_con", TypeString, "id degli altri obiettivi della stessa misura con una cifra diversa" + descList}, func(t *progress.Target) value { return optStr(strings.Join(t.Disagrees, "|")) }},
			{Column{"metodo", TypeString, "riferimento al metodo di calcolo nella pagina «Come calcoliamo» del portale"}, func(t *progress.Target) value { return optStr(t.Method) }},
			{Column{"nota", TypeString, "che cosa sapere sulla cifra o sulla sua fonte"}, func(t *progress.Target) value { return optStr(t.Note) }},
		}),
	rows: func(v *view, _ Filter) iter.Seq[*progress.Target] { return each(v.s.Targets) },
}

// targetPoint is one month of a target's trend.
type targetPoint struct {
	t *progress.Target
	p *progress.Point
}

var andamentoObiettivi = &tableSpec[targetPoint]{
	meta: Table{
		Name:        "andamento_obiettivi",
		Title:       "Andamento mensile degli obiettivi",
		Description: "Per ogni obiettivo, il valore contato dal gemello digitale alla fine di ogni mese dall'avvio dei lavori a oggi, dagli eventi del ciclo di vita degli apparati.",
		Formats:     []string{FormatCSV, FormatJSON},
		Themes:      []string{themeGOVE},
		Updates:     updatesContinuously,
	},
	fields: []field[targetPoint]{
		{Column{"obiettivo", TypeString, "id dell'obiettivo (tabella obiettivi)"}, func(r targetPoint) value { return str(r.t.ID) }},
		{Column{"misura", TypeString, "che cosa si conta"}, func(r targetPoint) value { return str(r.t.Measure) }},
		{Column{"mese", TypeString, "anno e mese, AAAA-MM"}, func(r targetPoint) value { return month(r.p) }},
		{Column{"data", TypeDate, "giorno a cui si riferisce il valore: l'ultimo del mese, o oggi per il mese in corso" + descDate}, func(r targetPoint) value { return date(r.p.Date) }},
		{Column{"valore", TypeInteger, "valore cumulato a quella data"}, func(r targetPoint) value { return integer(roundInt(r.p.Value)) }},
	},
	rows: func(v *view, _ Filter) iter.Seq[targetPoint] {
		return func(yield func(targetPoint) bool) {
			for t := range each(v.s.Targets) {
				for p := range each(t.Trend.Points) {
					if !yield(targetPoint{t, p}) {
						return
					}
				}
			}
		}
	},
}

func month(p *progress.Point) value {
	if p.Date.IsZero() {
		return null()
	}
	y, m, _ := civil(p.Date)
	return str(fmt.Sprintf("%04d-%02d", y, int(m)))
}

func roundInt(f float64) int {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0
	}
	return int(math.Round(f))
}

var dichiarazioni = &tableSpec[*progress.Published]{
	meta: Table{
		Name:  "dichiarazioni",
		Title: "Cifre pubblicate e conteggio del gemello digitale",
		Description: "Le cifre di avanzamento dichiarate da fonti pubbliche (comunicati, articoli, relazioni), ciascuna con la sua data " +
			"e fonte, accanto a quanto il gemello digitale contava alla stessa data: chi legge vede dove i dati dal campo e le " +
			"dichiarazioni coincidono e dove no.",
		Formats: []string{FormatCSV, FormatJSON},
		Themes:  []string{themeGOVE},
		Updates: updatesContinuously,
	},
	fields: slices.Concat([]field[*progress.Published]{
		{Column{"id", TypeString, "identificativo del fatto pubblico (es. F30)"}, func(p *progress.Published) value { return str(p.Fact) }},
		{Column{"data", TypeDate, "data a cui si riferisce la cifra" + descDate}, func(p *progress.Published) value { return date(p.Date) }},
		{Column{"metrica", TypeString, "che cosa è stato dichiarato, con le parole della fonte"}, func(p *progress.Published) value { return str(p.Metric) }},
		{Column{"misura", TypeString, "la misura del gemello digitale con cui si confronta; vuota se non ce n'è una"}, func(p *progress.Published) value { return optStr(p.Measure) }},
		{Column{"valore", TypeNumber, "cifra dichiarata"}, func(p *progress.Published) value { return number(p.Value) }},
		{Column{"unita", TypeString, "unità della cifra (uffici, unita, interventi, ...)"}, func(p *progress.Published) value { return optStr(p.Unit) }},
		{Column{"valore_gemello", TypeInteger, "quanto contava il gemello digitale alla stessa data; vuoto se non c'è una misura con cui confrontare"}, func(p *progress.Published) value {
			if p.Twin < 0 || p.Measure == "" {
				return null()
			}
			return integer(p.Twin)
		}},
		{Column{"differenza", TypeNumber, "valore_gemello meno valore; vuota se non c'è confronto"}, func(p *progress.Published) value {
			if p.Twin < 0 || p.Measure == "" {
				return null()
			}
			return number(float64(p.Twin) - p.Value)
		}},
	}, sourceFields(func(p *progress.Published) *progress.SourceRef { return &p.Source })[1:], // the fact is the id
		[]field[*progress.Published]{
			{Column{"nota", TypeString, "nota sulla fonte o sulla cifra"}, func(p *progress.Published) value { return optStr(p.Note) }},
		}),
	rows: func(v *view, _ Filter) iter.Seq[*progress.Published] { return each(v.s.Published) },
}

var finanziamento = &tableSpec[*progress.Funding]{
	meta: Table{
		Name:        "finanziamento",
		Title:       "Finanziamento del programma",
		Description: "Le risorse del programma Polis (stanziamento, quote annue, quota di Poste Italiane, investimento per gli Spazi per l'Italia), ciascuna con la sua fonte pubblica. Dove le fonti danno cifre diverse, ciascuna è una riga.",
		Formats:     []string{FormatCSV, FormatJSON},
		Themes:      []string{themeECON, themeGOVE},
		Updates:     updatesIrregularly,
	},
	fields: slices.Concat([]field[*progress.Funding]{
		{Column{"id", TypeString, "identificativo della cifra: il fatto pubblico (es. F01) o, per una cifra senza riga nella tabella dei fatti, un nome"}, func(f *progress.Funding) value { return str(cmp.Or(f.ID, f.Fact)) }},
		{Column{"data", TypeDate, "data a cui si riferisce l'importo" + descDate}, func(f *progress.Funding) value { return date(f.Date) }},
		{Column{"linea", TypeString, "linea del programma: programma, sportello_unico o spazi_per_italia"}, func(f *progress.Funding) value { return optStr(string(f.Line)) }},
		{Column{"voce", TypeString, "che cosa finanzia l'importo, con le parole della fonte"}, func(f *progress.Funding) value { return str(f.What) }},
		{Column{"importo_eur", TypeNumber, "importo in euro"}, func(f *progress.Funding) value { return number(f.Amount) }},
		{Column{"misura", TypeString, "che cosa è l'importo, es. pnc_total (stanziamento), pnc_2024 (quota annua 2024), poste_share (quota di Poste Italiane), spazi_investment (investimento Spazi per l'Italia)"}, func(f *progress.Funding) value { return optStr(f.Measure) }},
		{Column{"in_disaccordo_con", TypeString, "id delle altre cifre della stessa misura e periodo con un importo diverso" + descList}, func(f *progress.Funding) value { return optStr(strings.Join(f.Disagrees, "|")) }},
	}, sourceFields(func(f *progress.Funding) *progress.SourceRef { return &f.Source }),
		[]field[*progress.Funding]{
			{Column{"nota", TypeString, "nota sulla fonte o sull'importo"}, func(f *progress.Funding) value { return optStr(f.Note) }},
		}),
	rows: func(v *view, _ Filter) iter.Seq[*progress.Funding] { return each(v.s.Funding) },
}

// countFields are the wide columns of an area's progress: for every asset
// type, its counts at each lifecycle level.
func countFields[R any](byType func(R) map[string]progress.Counts) []field[R] {
	levels := []struct {
		suffix, desc string
		get          func(progress.Counts) int
	}{
		{"pianificati", "nel piano (tutti quelli non dismessi)", func(c progress.Counts) int { return c.Planned }},
		{"installati", "installati o oltre (installati, collaudati, operativi o guasti)", func(c progress.Counts) int { return c.Installed }},
		{"collaudati", "collaudati o oltre (collaudati, operativi o guasti)", func(c progress.Counts) int { return c.Commissioned }},
		{"operativi", "operativi ora", func(c progress.Counts) int { return c.Operational }},
		{"guasti", "guasti ora", func(c progress.Counts) int { return c.Faulty }},
		{"funzionanti", "funzionanti in questo momento: operativi, in linea e senza guasti segnalati dal gemello digitale", func(c progress.Counts) int { return c.WorkingNow }},
	}
	var out []field[R]
	for _, t := range assetTypes() {
		for _, l := range levels {
			code, get := t.code, l.get
			out = append(out, field[R]{
				Column{t.code + "_" + l.suffix, TypeInteger, t.name + " (" + t.code + "): " + l.desc},
				func(r R) value { return integer(get(byType(r)[code])) },
			})
		}
	}
	return out
}

func areaByType(a *progress.Area) map[string]progress.Counts { return a.ByType }

// areaProgress are the columns every area table ends with.
func areaProgress() []field[*progress.Area] {
	return slices.Concat([]field[*progress.Area]{
		{Column{"uffici", TypeInteger, "uffici postali del programma"}, func(a *progress.Area) value { return integer(a.Offices) }},
		{Column{"uffici_conclusi", TypeInteger, "uffici con l'intervento concluso: tutti i loro apparati collaudati o oltre"}, func(a *progress.Area) value { return integer(a.OfficesCompleted) }},
		{Column{"percentuale_conclusi", TypeNumber, "uffici conclusi in percento degli uffici (una cifra decimale); vuota se non ci sono uffici"}, func(a *progress.Area) value { return percent(a.OfficesCompleted, a.Offices) }},
		{Column{"uffici_operativi", TypeInteger, "uffici con tutti gli apparati operativi ora"}, func(a *progress.Area) value { return integer(a.OfficesOperational) }},
		{Column{"coworking", TypeInteger, "spazi di coworking Spazi per l'Italia"}, func(a *progress.Area) value { return integer(a.Coworking) }},
		{Column{"coworking_conclusi", TypeInteger, "spazi di coworking con l'intervento concluso: tutti i loro apparati collaudati o oltre"}, func(a *progress.Area) value { return integer(a.CoworkingCompleted) }},
	}, countFields(areaByType))
}

func percent(n, of int) value {
	if of <= 0 {
		return null()
	}
	return number(math.Round(float64(n)*1000/float64(of)) / 10)
}

var regioni = &tableSpec[*progress.Area]{
	meta: Table{
		Name:        "regioni",
		Title:       "Avanzamento per regione",
		Description: "Per ogni regione: uffici e spazi di coworking del programma, uffici conclusi e, per ogni tipo di apparato, quanti sono pianificati, installati, collaudati, operativi, guasti e funzionanti ora secondo il gemello digitale.",
		Formats:     []string{FormatCSV, FormatJSON},
		Themes:      []string{themeREGI, themeGOVE},
		Updates:     updatesContinuously,
	},
	fields: slices.Concat([]field[*progress.Area]{
		{Column{"codice_istat", TypeString, "codice ISTAT della regione (2 cifre)"}, func(a *progress.Area) value { return optStr(a.Code) }},
		{Column{"nome", TypeString, "nome della regione"}, func(a *progress.Area) value { return str(a.Name) }},
		{Column{"slug", TypeString, descSlug}, func(a *progress.Area) value { return str(a.Slug) }},
	}, areaProgress()),
	rows: func(v *view, _ Filter) iter.Seq[*progress.Area] { return nonNil(v.s.Regions, nil) },
}

// regionName is the name of the region with that slug, or the slug.
func (v *view) regionName(slug string) string {
	if a := v.regions[slug]; a != nil {
		return a.Name
	}
	return slug
}

// provincesTable and comuniTable need the view for the region of a row,
// so their rows carry it.
type areaRow struct {
	a *progress.Area
	v *view
}

func areaRows(v *view, f Filter, areas []*progress.Area) iter.Seq[areaRow] {
	return func(yield func(areaRow) bool) {
		for a := range nonNil(areas, func(a *progress.Area) bool { return v.area(f, a) }) {
			if !yield(areaRow{a, v}) {
				return
			}
		}
	}
}

// lift adapts the fields of an area to rows that carry their view.
func lift(fs []field[*progress.Area]) []field[areaRow] {
	out := make([]field[areaRow], len(fs))
	for i, f := range fs {
		get := f.get
		out[i] = field[areaRow]{f.Column, func(r areaRow) value { return get(r.a) }}
	}
	return out
}

var province = &tableSpec[areaRow]{
	meta: Table{
		Name:        "province",
		Title:       "Avanzamento per provincia",
		Description: "Per ogni provincia o città metropolitana: uffici e spazi di coworking del programma, uffici conclusi e, per ogni tipo di apparato, quanti sono pianificati, installati, collaudati, operativi, guasti e funzionanti ora.",
		Formats:     []string{FormatCSV, FormatJSON},
		Filters:     []string{FilterRegione, FilterProvincia},
		Themes:      []string{themeREGI, themeGOVE},
		Updates:     updatesContinuously,
	},
	fields: slices.Concat([]field[areaRow]{
		{Column{"codice_istat", TypeString, "codice ISTAT della provincia (3 cifre)"}, func(r areaRow) value { return optStr(r.a.Code) }},
		{Column{"sigla", TypeString, descSigla}, func(r areaRow) value { return str(strings.ToUpper(r.a.Slug)) }},
		{Column{"nome", TypeString, "nome della provincia o città metropolitana"}, func(r areaRow) value { return str(r.a.Name) }},
		{Column{"regione", TypeString, "nome della regione"}, func(r areaRow) value { return optStr(r.v.regionName(r.a.Parent)) }},
		{Column{"regione_slug", TypeString, descSlug}, func(r areaRow) value { return optStr(r.a.Parent) }},
	}, lift(areaProgress())),
	rows: func(v *view, f Filter) iter.Seq[areaRow] { return areaRows(v, f, v.s.Provinces) },
}

var comuni = &tableSpec[areaRow]{
	meta: Table{
		Name:        "comuni",
		Title:       "Avanzamento per comune",
		Description: "Per ogni comune con un ufficio postale o uno spazio di coworking del programma: uffici, uffici conclusi e, per ogni tipo di apparato, quanti sono pianificati, installati, collaudati, operativi, guasti e funzionanti ora.",
		Formats:     []string{FormatCSV, FormatJSON, FormatParquet},
		Filters:     []string{FilterRegione, FilterProvincia},
		Themes:      []string{themeREGI, themeGOVE},
		Updates:     updatesContinuously,
	},
	fields: slices.Concat([]field[areaRow]{
		{Column{"codice_istat", TypeString, "codice ISTAT del comune (6 cifre)"}, func(r areaRow) value { return optStr(r.a.Code) }},
		{Column{"nome", TypeString, "nome del comune"}, func(r areaRow) value { return str(r.a.Name) }},
		{Column{"provincia", TypeString, descSigla}, func(r areaRow) value { return optStr(strings.ToUpper(r.a.Parent)) }},
		{Column{"regione", TypeString, "nome della regione"}, func(r areaRow) value { return optStr(r.v.regionName(r.v.provinceRegion[r.a.Parent])) }},
		{Column{"regione_slug", TypeString, descSlug}, func(r areaRow) value { return optStr(r.v.provinceRegion[r.a.Parent]) }},
	}, lift(areaProgress())),
	rows: func(v *view, f Filter) iter.Seq[areaRow] { return areaRows(v, f, v.s.Comuni) },
}

// trendPoint is one month of an area's trend.
type trendPoint struct {
	a *progress.Area
	p *progress.Point
}

var andamento = &tableSpec[trendPoint]{
	meta: Table{
		Name:  "andamento",
		Title: "Andamento mensile degli uffici conclusi",
		Description: "Per l'Italia, ogni regione, provincia e comune con un ufficio: il numero cumulato di uffici con l'intervento " +
			"concluso alla fine di ogni mese dall'avvio dei lavori a oggi, dagli eventi del ciclo di vita degli apparati. " +
			"Con i filtri, le righe dell'area scelta e delle aree al suo interno.",
		Formats: []string{FormatCSV, FormatJSON, FormatParquet},
		Filters: []string{FilterRegione, FilterProvincia},
		Themes:  []string{themeGOVE, themeREGI},
		Updates: updatesContinuously,
	},
	fields: []field[trendPoint]{
		{Column{"tipo_area", TypeString, "italia, regione, provincia o comune"}, func(r trendPoint) value { return str(string(r.a.Kind)) }},
		{Column{"codice_area", TypeString, "codice ISTAT dell'area (regione 2 cifre, provincia 3, comune 6; IT per l'Italia)"}, func(r trendPoint) value { return optStr(r.a.Code) }},
		{Column{"area", TypeString, "nome dell'area"}, func(r trendPoint) value { return str(r.a.Name) }},
		{Column{"slug_area", TypeString, "slug dell'area nell'URL del portale (per la provincia, la sigla in minuscolo)"}, func(r trendPoint) value { return optStr(r.a.Slug) }},
		{Column{"mese", TypeString, "anno e mese, AAAA-MM"}, func(r trendPoint) value { return month(r.p) }},
		{Column{"data", TypeDate, "giorno a cui si riferisce il valore: l'ultimo del mese, o oggi per il mese in corso" + descDate}, func(r trendPoint) value { return date(r.p.Date) }},
		{Column{"uffici_conclusi", TypeInteger, "uffici con l'intervento concluso a quella data (cumulato)"}, func(r trendPoint) value { return integer(roundInt(r.p.Value)) }},
	},
	rows: func(v *view, f Filter) iter.Seq[trendPoint] {
		return func(yield func(trendPoint) bool) {
			areas := [][]*progress.Area{{v.s.Italy}, v.s.Regions, v.s.Provinces, v.s.Comuni}
			for _, as := range areas {
				for a := range nonNil(as, func(a *progress.Area) bool { return v.area(f, a) }) {
					for p := range each(a.Trend.Points) {
						if !yield(trendPoint{a, p}) {
							return
						}
					}
				}
			}
		}
	},
}

// officeRow is a post office or coworking space with the view, for the
// columns that look up its region or province.
type officeRow struct {
	o *progress.Office
	v *view
}

func officeRows(v *view, f Filter, lists ...[]*progress.Office) iter.Seq[officeRow] {
	return func(yield func(officeRow) bool) {
		for _, l := range lists {
			for o := range nonNil(l, f.office) {
				if !yield(officeRow{o, v}) {
					return
				}
			}
		}
	}
}

// decommissioned is the lifecycle state of a removed asset (the package
// reads progress's public types only, so it names the state itself).
const decommissioned = "decommissioned"

// inPlan reports whether an asset counts in the plan (not decommissioned).
func inPlan(a *progress.Asset) bool { return string(a.Lifecycle) != decommissioned }

func countAssets(o *progress.Office, keep func(*progress.Asset) bool) int {
	n := 0
	for i := range o.Assets {
		if keep(&o.Assets[i]) {
			n++
		}
	}
	return n
}

func kWh(f float64) value {
	if f < 0 {
		return null() // not known yet
	}
	return number(f)
}

// placeFields are the columns that say where an office is.
func placeFields() []field[officeRow] {
	return []field[officeRow]{
		{Column{"sito", TypeString, "identificativo pubblico del sito"}, func(r officeRow) value { return str(r.o.Site) }},
		{Column{"comune_istat", TypeString, "codice ISTAT del comune (6 cifre)"}, func(r officeRow) value { return optStr(r.o.Comune) }},
		{Column{"comune", TypeString, "nome del comune"}, func(r officeRow) value { return optStr(r.o.ComuneName) }},
		{Column{"provincia", TypeString, descSigla}, func(r officeRow) value { return optStr(strings.ToUpper(r.o.Province)) }},
		{Column{"provincia_nome", TypeString, "nome della provincia o città metropolitana"}, func(r officeRow) value { return optStr(r.o.ProvinceName) }},
		{Column{"regione", TypeString, "nome della regione"}, func(r officeRow) value { return optStr(r.o.Region) }},
		{Column{"regione_slug", TypeString, descSlug}, func(r officeRow) value { return optStr(r.o.RegionSlug) }},
	}
}

func officeState() []field[officeRow] {
	return []field[officeRow]{
		{Column{"cup", TypeString, "Codice Unico di Progetto dell'intervento"}, func(r officeRow) value { return optStr(r.o.CUP) }},
		{Column{"cig", TypeString, "Codice Identificativo Gara dell'intervento"}, func(r officeRow) value { return optStr(r.o.CIG) }},
		{Column{"concluso", TypeBoolean, "intervento concluso: tutti gli apparati collaudati o oltre"}, func(r officeRow) value { return boolean(r.o.Completed) }},
		{Column{"concluso_il", TypeDate, "data di conclusione dell'intervento" + descDate}, func(r officeRow) value { return date(r.o.CompletedOn) }},
		{Column{"operativo", TypeBoolean, "tutti gli apparati operativi ora"}, func(r officeRow) value { return boolean(r.o.Operational) }},
		{Column{"apparati", TypeInteger, "apparati nel piano (non dismessi)"}, func(r officeRow) value { return integer(countAssets(r.o, inPlan)) }},
		{Column{"apparati_funzionanti", TypeInteger, "apparati funzionanti in questo momento: operativi, in linea e senza guasti segnalati"}, func(r officeRow) value {
			return integer(countAssets(r.o, func(a *progress.Asset) bool { return a.WorkingNow }))
		}},
	}
}

var uffici = &tableSpec[officeRow]{
	meta: Table{
		Name:  "uffici",
		Title: "Uffici postali del programma",
		Description: "Ogni ufficio postale del programma Polis: dove si trova, il CUP, se l'intervento è concluso e quando, quanti " +
			"apparati ha e quanti funzionano ora, l'energia prodotta dal fotovoltaico e erogata dalle colonnine nel mese.",
		Formats: []string{FormatCSV, FormatJSON, FormatParquet},
		Filters: []string{FilterRegione, FilterProvincia},
		Themes:  []string{themeGOVE, themeREGI, themeENER},
		Updates: updatesContinuously,
	},
	fields: slices.Concat(placeFields(), []field[officeRow]{
		{Column{"popolazione", TypeInteger, "abitanti del comune (censimento ISTAT)"}, func(r officeRow) value {
			if r.o.Population <= 0 {
				return null()
			}
			return integer(r.o.Population)
		}},
		{Column{"area_interna", TypeString, "classe del comune nella mappa delle aree interne (A polo ... F ultraperiferico)"}, func(r officeRow) value { return optStr(r.o.InnerArea) }},
		{Column{"latitudine", TypeNumber, "latitudine WGS84 in gradi decimali"}, func(r officeRow) value { return number(r.o.Lat) }},
		{Column{"longitudine", TypeNumber, "longitudine WGS84 in gradi decimali"}, func(r officeRow) value { return number(r.o.Lon) }},
		{Column{"indirizzo", TypeString, "indirizzo dell'ufficio"}, func(r officeRow) value { return optStr(r.o.Address) }},
		{Column{"orari", TypeString, "orari di apertura"}, func(r officeRow) value { return optStr(r.o.OpeningHours) }},
	}, officeState(), []field[officeRow]{
		{Column{"pv_kwh_mese", TypeNumber, "energia prodotta dal fotovoltaico nel mese in corso, in kWh; vuota se non ancora nota"}, func(r officeRow) value { return kWh(r.o.PVkWhMonth) }},
		{Column{"evc_kwh_mese", TypeNumber, "energia erogata dalle colonnine di ricarica nel mese in corso, in kWh; vuota se non ancora nota"}, func(r officeRow) value { return kWh(r.o.EVCkWhMonth) }},
	}),
	rows: func(v *view, f Filter) iter.Seq[officeRow] { return officeRows(v, f, v.s.Offices) },
}

var coworking = &tableSpec[officeRow]{
	meta: Table{
		Name:        "coworking",
		Title:       "Spazi di coworking Spazi per l'Italia",
		Description: "Ogni spazio di coworking del programma: dove si trova, postazioni e sale riunioni con quante sono libere ora, il CUP, se l'intervento è concluso e quanti apparati funzionano ora.",
		Formats:     []string{FormatCSV, FormatJSON},
		Filters:     []string{FilterRegione, FilterProvincia},
		Themes:      []string{themeGOVE, themeREGI, themeECON},
		Updates:     updatesContinuously,
	},
	fields: slices.Concat(placeFields(), []field[officeRow]{
		{Column{"latitudine", TypeNumber, "latitudine WGS84 in gradi decimali"}, func(r officeRow) value { return number(r.o.Lat) }},
		{Column{"longitudine", TypeNumber, "longitudine WGS84 in gradi decimali"}, func(r officeRow) value { return number(r.o.Lon) }},
		{Column{"indirizzo", TypeString, "indirizzo dello spazio"}, func(r officeRow) value { return optStr(r.o.Address) }},
		{Column{"orari", TypeString, "orari di apertura"}, func(r officeRow) value { return optStr(r.o.OpeningHours) }},
		{Column{"postazioni", TypeInteger, "postazioni di lavoro"}, func(r officeRow) value { return integer(r.o.Workstations) }},
		{Column{"sale_riunioni", TypeInteger, "sale riunioni"}, func(r officeRow) value { return integer(r.o.MeetingRooms) }},
		{Column{"postazioni_libere", TypeInteger, "postazioni libere ora"}, func(r officeRow) value { return integer(r.o.FreeWorkstations) }},
		{Column{"sale_libere", TypeInteger, "sale riunioni libere ora"}, func(r officeRow) value { return integer(r.o.FreeRooms) }},
	}, officeState()),
	rows: func(v *view, f Filter) iter.Seq[officeRow] { return officeRows(v, f, v.s.Coworking) },
}

// assetRow is one asset of an office.
type assetRow struct {
	o *progress.Office
	a *progress.Asset
}

var apparati = &tableSpec[assetRow]{
	meta: Table{
		Name:  "apparati",
		Title: "Apparati installati e funzionanti",
		Description: "Ogni apparato pubblico del programma (ATM, totem, locker, vetrine, colonnine, fotovoltaico, sensori, spazi " +
			"esterni, postazioni e sale dei coworking): il sito, il tipo, lo stato nel ciclo di vita, la data di installazione, " +
			"se funziona ora, il fornitore e il CIG.",
		Formats: []string{FormatCSV, FormatJSON, FormatParquet},
		Filters: []string{FilterRegione, FilterProvincia},
		Themes:  []string{themeGOVE, themeTECH},
		Updates: updatesContinuously,
	},
	fields: []field[assetRow]{
		{Column{"sito", TypeString, "identificativo pubblico del sito"}, func(r assetRow) value { return str(r.o.Site) }},
		{Column{"tipo_sito", TypeString, "ufficio_postale o coworking"}, func(r assetRow) value { return str(siteKind(r.o.Kind)) }},
		{Column{"comune_istat", TypeString, "codice ISTAT del comune (6 cifre)"}, func(r assetRow) value { return optStr(r.o.Comune) }},
		{Column{"comune", TypeString, "nome del comune"}, func(r assetRow) value { return optStr(r.o.ComuneName) }},
		{Column{"provincia", TypeString, descSigla}, func(r assetRow) value { return optStr(strings.ToUpper(r.o.Province)) }},
		{Column{"regione_slug", TypeString, descSlug}, func(r assetRow) value { return optStr(r.o.RegionSlug) }},
		{Column{"apparato", TypeString, "identificativo pubblico dell'apparato nel sito (es. atm-1)"}, func(r assetRow) value { return str(r.a.ID) }},
		{Column{"tipo", TypeString, "tipo di apparato: " + strings.Join(progress.TypeOrder, ", ")}, func(r assetRow) value { return str(r.a.Type) }},
		{Column{"tipo_nome", TypeString, "tipo di apparato in italiano"}, func(r assetRow) value { return optStr(r.a.TypeName) }},
		{Column{"stato", TypeString, descLifecyle}, func(r assetRow) value { return str(string(r.a.Lifecycle)) }},
		{Column{"installato_il", TypeDate, "data di installazione" + descDate}, func(r assetRow) value { return date(r.a.InstalledOn) }},
		{Column{"stato_live", TypeString, "stato in tempo reale dal gemello digitale: online, offline, stale (dati non aggiornati), fault (guasto segnalato), unknown; vuoto se non disponibile"}, func(r assetRow) value { return optStr(r.a.Status) }},
		{Column{"in_linea", TypeBoolean, "l'apparato comunica ora con la piattaforma"}, func(r assetRow) value { return boolean(r.a.Online) }},
		{Column{"funzionante", TypeBoolean, "funziona in questo momento: operativo, in linea e senza guasti segnalati"}, func(r assetRow) value { return boolean(r.a.WorkingNow) }},
		{Column{"fornitore", TypeString, "fornitore dell'apparato"}, func(r assetRow) value { return optStr(r.a.Supplier) }},
		{Column{"cig", TypeString, "Codice Identificativo Gara della fornitura"}, func(r assetRow) value { return optStr(r.a.CIG) }},
	},
	rows: func(v *view, f Filter) iter.Seq[assetRow] {
		return func(yield func(assetRow) bool) {
			for _, l := range [][]*progress.Office{v.s.Offices, v.s.Coworking} {
				for o := range nonNil(l, f.office) {
					for a := range each(o.Assets) {
						if !yield(assetRow{o, a}) {
							return
						}
					}
				}
			}
		}
	},
}

// siteKind is an office kind in Italian.
func siteKind(k string) string {
	switch k {
	case "post_office":
		return "ufficio_postale"
	case "coworking":
		return "coworking"
	}
	return k
}

var fornitori = &tableSpec[*progress.Supplier]{
	meta: Table{
		Name:        "fornitori",
		Title:       "Fornitori coinvolti",
		Description: "I fornitori degli apparati del programma, dal registro: quali tipi di apparato forniscono, quanti apparati in quanti siti, con quali CIG.",
		Formats:     []string{FormatCSV, FormatJSON},
		Themes:      []string{themeECON, themeGOVE},
		Updates:     updatesContinuously,
	},
	fields: slices.Concat([]field[*progress.Supplier]{
		{Column{"nome", TypeString, "ragione sociale del fornitore"}, func(s *progress.Supplier) value { return str(s.Name) }},
		{Column{"tipi", TypeString, "tipi di apparato forniti" + descList}, func(s *progress.Supplier) value { return optStr(strings.Join(s.Types, "|")) }},
		{Column{"apparati", TypeInteger, "apparati forniti"}, func(s *progress.Supplier) value { return integer(s.Assets) }},
		{Column{"siti", TypeInteger, "siti in cui ha fornito apparati"}, func(s *progress.Supplier) value { return integer(s.Sites) }},
		{Column{"cig", TypeString, "Codici Identificativi Gara delle forniture" + descList}, func(s *progress.Supplier) value { return optStr(strings.Join(s.CIGs, "|")) }},
	}, supplierTypeFields()),
	rows: func(v *view, _ Filter) iter.Seq[*progress.Supplier] { return each(v.s.Suppliers) },
}

func supplierTypeFields() []field[*progress.Supplier] {
	types := assetTypes()
	out := make([]field[*progress.Supplier], len(types))
	for i, t := range types {
		code := t.code
		out[i] = field[*progress.Supplier]{
			Column{"apparati_" + code, TypeInteger, t.name + " (" + code + "): apparati forniti"},
			func(s *progress.Supplier) value { return integer(s.ByType[code]) },
		}
	}
	return out
}
