package registry

import (
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
	"time"
)

// ExportCSV writes reg in the ImportHeader layout, sites by id and assets
// in registry order, so that ImportCSV of the output rebuilds an equal
// registry, secret hashes included. Plaintext secrets are never written.
func ExportCSV(w io.Writer, reg *Registry) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(append(importColumns[:len(importColumns):len(importColumns)], LabelsColumn)); err != nil {
		return fmt.Errorf("cannot export registry: %w", err)
	}
	row := make([]string, len(importColumns)+1)
	for _, s := range reg.Sites() {
		site := []string{
			s.ID, string(s.Kind), s.Comune, s.Name, s.Province, s.ProvinceName, s.Region,
			strconv.Itoa(s.Population), s.InnerArea, floatCell(s.Lat, s.Lon, s.Lat), floatCell(s.Lat, s.Lon, s.Lon),
			s.Address, "", s.CUP, s.CIG, "", "", "",
		}
		if s.OpeningHours != nil {
			site[12] = s.OpeningHours.String()
		}
		if c := s.Coworking; c != nil {
			site[15], site[16], site[17] = strconv.Itoa(c.Workstations), strconv.Itoa(c.MeetingRooms), strconv.Itoa(c.EventAreas)
		}
		copy(row, site)
		row[len(row)-1] = FormatLabels(s.Labels)
		if len(s.Assets) == 0 {
			clear(row[len(site) : len(row)-1])
			if err := cw.Write(row); err != nil {
				return fmt.Errorf("cannot export registry: %w", err)
			}
		}
		for _, a := range s.Assets {
			installed := ""
			if !a.InstalledAt.IsZero() {
				installed = a.InstalledAt.UTC().Format(time.RFC3339Nano)
			}
			copy(row[len(site):], []string{a.ID, a.Type, a.Supplier, a.CIG, string(a.Lifecycle), installed, "", a.SecretHash})
			if err := cw.Write(row); err != nil {
				return fmt.Errorf("cannot export registry: %w", err)
			}
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("cannot export registry: %w", err)
	}
	return nil
}

// floatCell writes v exactly (shortest form that parses back to v), or
// nothing when the site has no coordinates.
func floatCell(lat, lon, v float64) string {
	if lat == 0 && lon == 0 {
		return ""
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

// ComuniExportHeader is the header of ExportComuniCSV: the columns of
// ISTAT's list that LoadComuni reads, named as there, plus lat and lon.
var ComuniExportHeader = []string{
	"PROCOM_T", "REGIONE", "SIGLA_AUTOM", "PROVINCIA_CM", "COMUNE_30sett20",
	"FLAG_CAPOLUOGO", "POP_RES_CENS_2020", "COD_AI_2020", "lat", "lon",
}

// ExportComuniCSV writes one row per comune that has a post office made
// from the ISTAT list (a PO site with a name and an inner-area class), in
// the ISTAT-like layout LoadComuni reads. The registry does not keep the
// capital flag: FLAG_CAPOLUOGO is 0, which holds for the programme's comuni
// (no provincial capital is under 15,000 inhabitants). PROVINCIA_CM falls
// back to the sigla when the full name is not known.
func ExportComuniCSV(w io.Writer, reg *Registry) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(ComuniExportHeader); err != nil {
		return fmt.Errorf("cannot export comuni: %w", err)
	}
	done := map[string]bool{}
	for _, s := range reg.Sites() {
		if s.Kind != KindPostOffice || s.Name == "" || s.InnerArea == "" || done[s.Comune] {
			continue
		}
		done[s.Comune] = true
		prov := s.ProvinceName
		if prov == "" {
			prov = s.Province
		}
		rec := []string{s.Comune, s.Region, s.Province, prov, s.Name, "0", strconv.Itoa(s.Population), s.InnerArea,
			floatCell(s.Lat, s.Lon, s.Lat), floatCell(s.Lat, s.Lon, s.Lon)}
		if err := cw.Write(rec); err != nil {
			return fmt.Errorf("cannot export comuni: %w", err)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("cannot export comuni: %w", err)
	}
	return nil
}
