package portal

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/polis-platform/polis/services"
)

// servicesDoc is the JSON download of an office's services now.
type servicesDoc struct {
	Site     string                  `json:"site"`
	At       time.Time               `json:"at"`
	Licence  string                  `json:"licence"`
	Services []services.Availability `json:"services"`
}

// servicesData serves the office page's services table as CSV or JSON
// (/uffici/{site}/servizi.csv|json): the one table of the portal that is
// live rather than part of the snapshot, so portal/opendata has no file of
// it.
func (h *Handler) servicesData(format string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		snap := h.o.Snapshot()
		if snap == nil {
			h.unavailable(w, r)
			return
		}
		o := snap.Office(r.PathValue("site"))
		if o == nil || o.Kind == "coworking" {
			h.notFound(w, r)
			return
		}
		if h.o.Services == nil {
			h.errorPage(w, r, http.StatusServiceUnavailable, "Servizio non disponibile",
				"Il servizio che indica quali servizi pubblici offre l'ufficio non è disponibile.")
			return
		}
		now := h.o.Now()
		avail, ok := h.o.Services.Office(o.Site, now)
		if !ok {
			h.errorPage(w, r, http.StatusServiceUnavailable, "Servizio non disponibile",
				"Il servizio non conosce ancora questo ufficio. Riprova più tardi.")
			return
		}
		var b bytes.Buffer
		switch format {
		case "json":
			w.Header().Set("Content-Type", "application/json; charset=utf-8")
			enc := json.NewEncoder(&b)
			enc.SetIndent("", "  ")
			if err := enc.Encode(servicesDoc{Site: o.Site, At: now.UTC(), Licence: "CC-BY-4.0", Services: avail}); err != nil {
				h.fail(w, r, err)
				return
			}
		default:
			w.Header().Set("Content-Type", "text/csv; charset=utf-8")
			cw := csv.NewWriter(&b)
			cw.UseCRLF = true
			cw.Write([]string{"sede", "servizio", "nome", "disponibile", "canale", "motivo", "messaggio", "previsto_il"})
			for _, a := range avail {
				exp := ""
				if !a.ExpectedAt.IsZero() {
					exp = a.ExpectedAt.UTC().Format(time.RFC3339)
				}
				cw.Write([]string{o.Site, a.Service, a.Name, strconv.FormatBool(a.Available), string(a.Channel), a.Reason, a.Message, exp})
			}
			cw.Flush()
		}
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Content-Length", strconv.Itoa(b.Len()))
		if r.Method != http.MethodHead {
			w.Write(b.Bytes())
		}
	}
}
