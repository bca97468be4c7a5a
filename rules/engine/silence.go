package engine

import (
	"fmt"
	"regexp"
	"sort"
	"time"
)

// Matcher matches one label of an alert (rule, site, asset, severity and
// the rule's labels). Regex is anchored.
type Matcher struct {
	Label, Value string
	Regex        bool
}

// Silence holds back the notifications of matching alerts in [Start, End).
type Silence struct {
	ID                 string
	Matchers           []Matcher
	Start, End         time.Time
	CreatedBy, Comment string
}

type silence struct {
	Silence
	res []*regexp.Regexp // per matcher, nil if not a regex
}

// Silence adds or replaces a silence. Alerts held by it are delivered at
// the first Tick after it ends, if still open.
func (e *Engine) Silence(s Silence) error {
	switch {
	case s.ID == "":
		return fmt.Errorf("cannot add silence: no id")
	case len(s.Matchers) == 0:
		return fmt.Errorf("cannot add silence %q: no matchers", s.ID)
	case !s.End.After(s.Start):
		return fmt.Errorf("cannot add silence %q: end %s is not after start %s", s.ID, s.End.Format(time.RFC3339), s.Start.Format(time.RFC3339))
	}
	c := &silence{Silence: s, res: make([]*regexp.Regexp, len(s.Matchers))}
	c.Matchers = append([]Matcher(nil), s.Matchers...)
	for i, m := range s.Matchers {
		if m.Label == "" {
			return fmt.Errorf("cannot add silence %q: matcher %d has no label", s.ID, i)
		}
		if m.Regex {
			re, err := regexp.Compile("^(?:" + m.Value + ")$")
			if err != nil {
				return fmt.Errorf("cannot add silence %q: %w", s.ID, err)
			}
			c.res[i] = re
		}
	}
	e.smu.Lock()
	defer e.smu.Unlock()
	m := e.copySilences()
	m[s.ID] = c
	e.silences.Store(&m)
	return nil
}

// Unsilence removes a silence; held alerts go out at the next Tick.
func (e *Engine) Unsilence(id string) error {
	e.smu.Lock()
	defer e.smu.Unlock()
	m := e.copySilences()
	if m[id] == nil {
		return fmt.Errorf("cannot remove silence %q: %w", id, ErrNotFound)
	}
	delete(m, id)
	e.silences.Store(&m)
	return nil
}

// Silences returns the silences not yet expired, by id.
func (e *Engine) Silences() []Silence {
	m := *e.silences.Load()
	res := make([]Silence, 0, len(m))
	for _, s := range m {
		res = append(res, s.Silence)
	}
	sort.Slice(res, func(i, j int) bool { return res[i].ID < res[j].ID })
	return res
}

func (e *Engine) copySilences() map[string]*silence {
	old := *e.silences.Load()
	m := make(map[string]*silence, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	return m
}

func (e *Engine) expireSilences(now time.Time) {
	expired := false
	for _, s := range *e.silences.Load() {
		expired = expired || !now.Before(s.End)
	}
	if !expired {
		return
	}
	e.smu.Lock()
	defer e.smu.Unlock()
	m := e.copySilences()
	n := len(m)
	for id, s := range m {
		if !now.Before(s.End) {
			delete(m, id)
		}
	}
	if len(m) != n {
		e.silences.Store(&m)
	}
}
