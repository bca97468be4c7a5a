package api

import (
	"context"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"time"

	"github.com/polis-platform/polis/twin/lifecycle"
)

// LifecycleImporter writes a batch of lifecycle events (twin.Live's
// ImportLifecycle). It must answer like it: a *lifecycle.BatchError when
// an event is refused (nothing written), an error wrapping
// lifecycle.ErrElsewhere when a site is served by another instance
// (nothing written), any other error when writing failed part way (the
// events counted in applied are written; importing again writes the rest).
// Events the log already holds are skipped, not written twice.
type LifecycleImporter interface {
	ImportLifecycle(ctx context.Context, events []lifecycle.Event) (applied, skipped int, err error)
}

// importResult is the answer to a lifecycle import.
type importResult struct {
	Applied int `json:"applied"`
	Skipped int `json:"skipped"`
}

// importRefused is the error of an import refused for one event: which
// one (its 0-based index, and its line in the body when known) and why.
type importRefused struct {
	Error
	Index int    `json:"index"`
	Line  int    `json:"line,omitempty"`
	Site  string `json:"site,omitempty"`
	Asset string `json:"asset,omitempty"`
}

const lifecycleImportUsage = `NDJSON (Content-Type: application/x-ndjson), one event a line, or a JSON array (application/json) of ` +
	`{"site": "PO-001002-1", "asset": "atm-1", "to": "installed", "at": "2023-05-04T08:12:00Z", "cause": "..."}`

// importer is the configured importer, else Live if it is one.
func (a *v1) importer() LifecycleImporter {
	if a.o.LifecycleImport != nil {
		return a.o.LifecycleImport
	}
	li, _ := a.o.Live.(LifecycleImporter)
	return li
}

// importLifecycle is POST /api/v1/lifecycle/import: a history of lifecycle
// events, checked whole and written through the lifecycle log with their
// own times.
func (a *v1) importLifecycle(w http.ResponseWriter, r *http.Request) {
	tok, ok := a.auth.check(w, r, actLifecycle)
	if !ok {
		return
	}
	imp := a.importer()
	if imp == nil {
		WriteError(w, CodeUnavailable, "this server cannot import lifecycle events (it has no lifecycle log)")
		return
	}
	switch mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); {
	case err != nil:
		WriteError(w, CodeUnsupportedMediaType, "send "+lifecycleImportUsage)
		return
	case mt == "application/x-ndjson", mt == "application/json":
	default:
		WriteError(w, CodeUnsupportedMediaType, fmt.Sprintf("Content-Type %s is not taken here; send %s", mt, lifecycleImportUsage))
		return
	}
	// Up to MaxImportBytes (bodyLimit), arriving within the bulk timeout
	// now that the token is checked; the import gets as long to run.
	a.bulk(w, true, 0)
	events, lines, err := lifecycle.DecodeImport(r.Body)
	var de *lifecycle.DecodeError
	switch {
	case errors.As(err, &de):
		body := &importRefused{Error: Error{Code: CodeBadBody, Message: de.Error() + "; send " + lifecycleImportUsage}, Index: de.Index, Line: de.Line}
		writeCoded(w, body)
		return
	case isBodyLimit(err):
		a.bodyError(w, err, lifecycleImportUsage)
		return
	case err != nil:
		WriteError(w, CodeBadBody, fmt.Sprintf("cannot read the body (%v); send %s", err, lifecycleImportUsage))
		return
	case len(events) == 0:
		WriteError(w, CodeBadBody, "the body holds no event; send "+lifecycleImportUsage)
		return
	}
	for i := range events {
		events[i].Actor = tok.Name // who imports, never the file
	}
	ctx := r.Context()
	if d := a.lim.BulkTimeout; d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	start := time.Now()
	applied, skipped, err := imp.ImportLifecycle(ctx, events)
	var be *lifecycle.BatchError
	var te *lifecycle.TransitionError
	switch {
	case errors.As(err, &be):
		body := &importRefused{Index: be.Index, Site: be.Event.Site, Asset: be.Event.Asset}
		if be.Index >= 0 && be.Index < len(lines) {
			body.Line = lines[be.Index]
		}
		where := fmt.Sprintf("event %d", be.Index)
		if body.Line > 0 {
			where += fmt.Sprintf(" (line %d)", body.Line)
		}
		body.Message = fmt.Sprintf("%s: %v; nothing was imported", where, be.Err)
		switch {
		case errors.Is(err, lifecycle.ErrUnknownSite):
			body.Code = CodeUnknownSite
		case errors.Is(err, lifecycle.ErrUnknownAsset):
			body.Code = CodeUnknownAsset
		case errors.As(err, &te):
			body.Code = CodeTransitionNotAllowed
			for _, st := range te.Allowed {
				body.Allowed = append(body.Allowed, string(st))
			}
		default:
			body.Code = CodeBadBody
		}
		a.log.Info("lifecycle import refused", "token", tok.Name, "events", len(events), "index", be.Index, "err", be.Err)
		writeCoded(w, body)
	case errors.Is(err, lifecycle.ErrElsewhere):
		WriteError(w, CodeUnavailable, err.Error()+"; nothing was imported")
	case err != nil:
		a.log.Error("lifecycle import failed", "token", tok.Name, "events", len(events), "applied", applied, "err", err)
		WriteError(w, CodeInternal, fmt.Sprintf("the import failed after %d of its events were written (%v); import the same body again to write the rest, those written are skipped",
			applied, err))
	default:
		a.log.Info("lifecycle imported", "token", tok.Name, "events", len(events), "applied", applied, "skipped", skipped,
			"took", time.Since(start).Round(time.Millisecond))
		writeJSON(w, http.StatusOK, importResult{Applied: applied, Skipped: skipped})
	}
}
