package opendata

import (
	"iter"
	"slices"
	"strings"
	"time"

	"github.com/polis-platform/polis/portal/progress"
)

// progetti is the project-level export in the national layout: one row per
// intervention (a post office or a coworking space), with the CUP, the
// CIGs, the ISTAT code of the comune, the state of the works and the
// assets by type. Its CSV is `;`-separated UTF-8 with a BOM, dates
// dd/mm/yyyy and decimal commas (NationalCSV), so that it opens as is in a
// spreadsheet set to Italian, as the national portals' exports do.
var progetti = &tableSpec[officeRow]{
	meta: Table{
		Name:  "progetti",
		Title: "Interventi del programma (tracciato nazionale)",
		Description: "Un intervento per riga (ogni ufficio postale e ogni spazio di coworking), nel tracciato usato dai portali " +
			"nazionali per i progetti: CUP, CIG, codice ISTAT del comune, stato dell'intervento, data di conclusione, numero di " +
			"apparati per tipo. Il CSV è separato da punto e virgola, in UTF-8 con BOM, con date GG/MM/AAAA e virgola decimale. " +
			"L'importo del singolo intervento non è pubblicato da alcuna fonte: la colonna IMPORTO_EUR resta vuota finché non lo " +
			"sarà; il finanziamento complessivo è nella tabella finanziamento.",
		Formats: []string{FormatCSV, FormatJSON},
		Filters: []string{FilterRegione, FilterProvincia},
		CSV:     NationalCSV,
		Themes:  []string{themeGOVE, themeECON, themeREGI},
		Updates: updatesContinuously,
	},
	fields: slices.Concat([]field[officeRow]{
		{Column{"COD_LOCALE_PROGETTO", TypeString, "identificativo pubblico del sito dell'intervento"}, func(r officeRow) value { return str(r.o.Site) }},
		{Column{"CUP", TypeString, "Codice Unico di Progetto"}, func(r officeRow) value { return optStr(r.o.CUP) }},
		{Column{"CIG", TypeString, "Codici Identificativi Gara dell'intervento e delle forniture dei suoi apparati" + descList}, func(r officeRow) value { return optStr(strings.Join(officeCIGs(r.o), "|")) }},
		{Column{"TITOLO_PROGETTO", TypeString, "titolo dell'intervento"}, func(r officeRow) value { return str(projectTitle(r.o)) }},
		{Column{"LINEA", TypeString, "linea del programma: Sportello Unico (uffici postali) o Spazi per l'Italia (coworking)"}, func(r officeRow) value { return str(projectLine(r.o)) }},
		{Column{"COD_COMUNE", TypeString, "codice ISTAT del comune (6 cifre)"}, func(r officeRow) value { return optStr(r.o.Comune) }},
		{Column{"DEN_COMUNE", TypeString, "nome del comune"}, func(r officeRow) value { return optStr(r.o.ComuneName) }},
		{Column{"COD_PROVINCIA", TypeString, "codice ISTAT della provincia (3 cifre)"}, func(r officeRow) value {
			if a := r.v.provinces[provinceSlug(r.o.Province)]; a != nil {
				return optStr(a.Code)
			}
			return null()
		}},
		{Column{"SIGLA_PROVINCIA", TypeString, descSigla}, func(r officeRow) value { return optStr(strings.ToUpper(r.o.Province)) }},
		{Column{"DEN_PROVINCIA", TypeString, "nome della provincia o città metropolitana"}, func(r officeRow) value { return optStr(r.o.ProvinceName) }},
		{Column{"COD_REGIONE", TypeString, "codice ISTAT della regione (2 cifre)"}, func(r officeRow) value {
			if a := r.v.regions[r.o.RegionSlug]; a != nil {
				return optStr(a.Code)
			}
			return null()
		}},
		{Column{"DEN_REGIONE", TypeString, "nome della regione"}, func(r officeRow) value { return optStr(r.o.Region) }},
		{Column{"LATITUDINE", TypeNumber, "latitudine WGS84 in gradi decimali"}, func(r officeRow) value { return number(r.o.Lat) }},
		{Column{"LONGITUDINE", TypeNumber, "longitudine WGS84 in gradi decimali"}, func(r officeRow) value { return number(r.o.Lon) }},
		{Column{"STATO_INTERVENTO", TypeString, "concluso (tutti gli apparati collaudati o oltre), in corso (almeno un apparato installato), da avviare (nessun apparato installato)"}, func(r officeRow) value { return str(projectState(r.o)) }},
		{Column{"DATA_INIZIO_INSTALLAZIONI", TypeDate, "data della prima installazione di un apparato dell'intervento; vuota se nessuno è installato"}, func(r officeRow) value { return date(firstInstall(r.o)) }},
		{Column{"DATA_CONCLUSIONE", TypeDate, "data di conclusione dell'intervento; vuota se non concluso"}, func(r officeRow) value { return date(r.o.CompletedOn) }},
		{Column{"IN_FUNZIONE", TypeBoolean, "tutti gli apparati dell'intervento operativi ora"}, func(r officeRow) value { return boolean(r.o.Operational) }},
		{Column{"IMPORTO_EUR", TypeNumber, "importo dell'intervento in euro; vuoto: nessuna fonte pubblica riporta l'importo del singolo intervento (il finanziamento complessivo è nella tabella finanziamento)"}, func(officeRow) value { return null() }},
		{Column{"FORNITORI", TypeString, "fornitori degli apparati dell'intervento" + descList}, func(r officeRow) value { return optStr(strings.Join(officeSuppliers(r.o), "|")) }},
		{Column{"N_APPARATI", TypeInteger, "apparati nel piano (non dismessi)"}, func(r officeRow) value { return integer(countAssets(r.o, inPlan)) }},
	}, projectTypeFields(), []field[officeRow]{
		{Column{"N_APPARATI_FUNZIONANTI", TypeInteger, "apparati funzionanti in questo momento"}, func(r officeRow) value {
			return integer(countAssets(r.o, func(a *progress.Asset) bool { return a.WorkingNow }))
		}},
	}),
	rows: func(v *view, f Filter) iter.Seq[officeRow] { return officeRows(v, f, v.s.Offices, v.s.Coworking) },
}

func projectTypeFields() []field[officeRow] {
	types := assetTypes()
	out := make([]field[officeRow], len(types))
	for i, t := range types {
		code := t.code
		out[i] = field[officeRow]{
			Column{"N_" + strings.ToUpper(code), TypeInteger, t.name + ": apparati nel piano (non dismessi)"},
			func(r officeRow) value {
				return integer(countAssets(r.o, func(a *progress.Asset) bool { return a.Type == code && inPlan(a) }))
			},
		}
	}
	return out
}

func projectTitle(o *progress.Office) string {
	place := o.ComuneName
	if place == "" {
		place = o.Site
	}
	if o.Kind == "coworking" {
		return "Polis - Spazi per l'Italia: spazio di coworking di " + place
	}
	return "Polis - Casa dei servizi di cittadinanza digitale: ufficio postale di " + place
}

func projectLine(o *progress.Office) string {
	if o.Kind == "coworking" {
		return "Spazi per l'Italia"
	}
	return "Sportello Unico"
}

// projectState is the state of the works on an office.
func projectState(o *progress.Office) string {
	if o.Completed {
		return "concluso"
	}
	for i := range o.Assets {
		switch string(o.Assets[i].Lifecycle) {
		case "planned", decommissioned, "":
		default:
			return "in corso"
		}
	}
	return "da avviare"
}

// firstInstall is when the first of an office's assets was installed.
func firstInstall(o *progress.Office) time.Time {
	var first time.Time
	for i := range o.Assets {
		t := o.Assets[i].InstalledOn
		if !t.IsZero() && (first.IsZero() || t.Before(first)) {
			first = t
		}
	}
	return first
}

// officeCIGs are the office's CIG and its assets' CIGs, each once, the
// office's first and the others sorted.
func officeCIGs(o *progress.Office) []string {
	var cigs []string
	for i := range o.Assets {
		if c := o.Assets[i].CIG; c != "" && c != o.CIG {
			cigs = append(cigs, c)
		}
	}
	slices.Sort(cigs)
	cigs = slices.Compact(cigs)
	if o.CIG != "" {
		cigs = append([]string{o.CIG}, cigs...)
	}
	return cigs
}

func officeSuppliers(o *progress.Office) []string {
	var out []string
	for i := range o.Assets {
		if s := o.Assets[i].Supplier; s != "" {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}
