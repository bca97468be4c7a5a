package api

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"

	"github.com/polis-platform/polis/twin/registry"
)

// Registrar changes the registry in bulk: the provisioning CSV of
// registry.ImportHeader in, the same layout out. The API only needs this,
// so it declares it here; the platform implements it over its
// *registry.Registry (registry.ImportCSV and registry.ExportCSV) and
// persists the result.
//
// Import must answer like registry.ImportCSV, because the API maps its
// results to status codes:
//   - a report and nil: imported (200), refused rows listed in the report;
//   - a report and an error wrapping registry.ErrRefused: strict mode
//     refused rows and nothing was imported (422, with the report);
//   - a nil report and an error: the file cannot be read (bad header,
//     empty file, broken CSV): 400 with the error's message; an error
//     wrapping *http.MaxBytesError (the body was cut at the API's limit) is
//     413, one wrapping os.ErrDeadlineExceeded (the body did not arrive
//     within the bulk timeout) 408;
//   - a report and any other error: the import failed after the file was
//     read (e.g. the registry could not be saved): 500, and the report's
//     generated credentials are not returned, so an implementation should
//     fail before changing the registry when it can.
//
// Export writes the whole registry, secret hashes included (never
// plaintext secrets), in the ImportHeader layout.
type Registrar interface {
	Import(r io.Reader, strict bool) (*registry.ImportReport, error)
	Export(w io.Writer) error
}

// importReport is the answer to an import: always every key, arrays never
// null.
type importReport struct {
	Sites       int                   `json:"sites"`
	Assets      int                   `json:"assets"`
	Refused     []registry.RefusedRow `json:"refused"`
	Warnings    []registry.RefusedRow `json:"warnings"`
	Credentials []credentialDTO       `json:"credentials"`
}

type credentialDTO struct {
	Site     string `json:"site"`
	Asset    string `json:"asset"`
	Username string `json:"username"`
	Password string `json:"password"`
}

func reportDTO(rep *registry.ImportReport) importReport {
	out := importReport{Sites: rep.Sites, Assets: rep.Assets, Refused: rep.Refused, Warnings: rep.Warnings,
		Credentials: make([]credentialDTO, 0, len(rep.Credentials))}
	if out.Refused == nil {
		out.Refused = []registry.RefusedRow{}
	}
	if out.Warnings == nil {
		out.Warnings = []registry.RefusedRow{}
	}
	for _, c := range rep.Credentials {
		out.Credentials = append(out.Credentials, credentialDTO{Site: c.Site, Asset: c.Asset, Username: c.Username, Password: c.Password})
	}
	return out
}

func (a *v1) importRegistry(w http.ResponseWriter, r *http.Request) {
	tok, ok := a.auth.check(w, r, actRegistry)
	if !ok {
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "text/csv" {
		WriteError(w, CodeUnsupportedMediaType,
			fmt.Sprintf("send the registry as Content-Type: text/csv in the layout of GET /api/v1/registry/export (header %q)", registry.ImportHeader))
		return
	}
	strict := false
	switch v := r.URL.Query().Get("strict"); v {
	case "", "false":
	case "true":
		strict = true
	default:
		WriteError(w, CodeBadParameter, fmt.Sprintf("strict=%q: want true or false", v))
		return
	}
	// The body (up to MaxImportBytes, bounded by bodyLimit) may take
	// longer than ReadTimeout to arrive, and the import longer than
	// WriteTimeout: BulkTimeout, now that the token is checked.
	a.bulk(w, true, 0)
	rep, err := a.o.Registrar.Import(r.Body, strict)
	// The answer may hold plaintext device secrets: no cache may keep it.
	w.Header().Set("Cache-Control", "no-store")
	var tooLarge *http.MaxBytesError
	switch {
	case err == nil && rep != nil:
		a.log.Info("registry imported", "token", tok.Name, "strict", strict, "sites", rep.Sites, "assets", rep.Assets,
			"refused", len(rep.Refused), "credentials", len(rep.Credentials))
		writeJSON(w, http.StatusOK, reportDTO(rep))
	case err == nil:
		a.log.Error("registry import returned no report", "token", tok.Name)
		WriteError(w, CodeInternal, "the import returned no report; check the registry and retry")
	case errors.As(err, &tooLarge):
		a.m.limited.WithLabelValues(limitBodySize).Inc()
		WriteError(w, CodeTooLarge,
			fmt.Sprintf("the body is over %d bytes; split the file by site and import the parts", tooLarge.Limit))
	case isBodyLimit(err):
		a.bodyError(w, err, "")
	case errors.Is(err, registry.ErrRefused) && rep != nil:
		a.log.Info("registry import refused", "token", tok.Name, "refused", len(rep.Refused))
		rep.Credentials = nil // nothing was imported: these secrets belong to no device
		writeJSON(w, http.StatusUnprocessableEntity, reportDTO(rep))
	case rep == nil:
		WriteError(w, CodeBadFile, err.Error())
	default:
		a.log.Error("registry import failed", "token", tok.Name, "err", err, "credentials_lost", len(rep.Credentials))
		msg := err.Error()
		if n := len(rep.Credentials); n > 0 {
			msg += fmt.Sprintf("; %d generated device secrets are not returned: import those rows again with secrets of your own", n)
		}
		WriteError(w, CodeInternal, msg)
	}
}

func (a *v1) exportRegistry(w http.ResponseWriter, r *http.Request) {
	tok, ok := a.auth.check(w, r, actRegistry)
	if !ok {
		return
	}
	a.bulk(w, false, 0)
	// Buffered, so that a failure is still a JSON error rather than a
	// truncated file with a 200.
	var b bytes.Buffer
	if err := a.o.Registrar.Export(&b); err != nil {
		a.log.Error("registry export failed", "token", tok.Name, "err", err)
		WriteError(w, CodeInternal, err.Error())
		return
	}
	a.log.Info("registry exported", "token", tok.Name, "bytes", b.Len())
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="polis-registry.csv"`)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b.Bytes())
}
