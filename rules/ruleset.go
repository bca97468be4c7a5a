package rules

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/polis-platform/polis/kafka"
	"github.com/polis-platform/polis/rules/dsl"
)

// Errors of the rule API.
var (
	ErrNotFound  = errors.New("no such rule")
	ErrFileRule  = errors.New("the rule is defined in the rules directory: change the file")
	ErrConflict  = errors.New("the rule was changed meanwhile: read it again and resend with its version")
	ErrReadOnly  = errors.New("rules cannot be changed through the API on this instance (no Kafka brokers)")
	ErrIDChanged = errors.New("the id in the body differs from the id in the path")
)

// Version is one saved text of a rule.
type Version struct {
	ID      string    `json:"id"`
	Version int       `json:"version"`
	Origin  string    `json:"origin"` // "api" or the file's path
	Source  string    `json:"source"` // YAML of the rule; empty when deleted
	Deleted bool      `json:"deleted,omitempty"`
	By      string    `json:"by,omitempty"`
	Comment string    `json:"comment,omitempty"`
	At      time.Time `json:"at"`
}

// ruleSet is where the rules come from: the directory's files and the
// API's versions, merged into the evaluator's list.
type ruleSet struct {
	dir  string
	opts dsl.Options

	mu       sync.Mutex
	files    []*dsl.Rule
	fileOf   map[string]string      // id -> file, for the rules of the directory
	api      map[string]*dsl.Rule   // id -> current API rule
	versions map[string][]Version   // id -> every version, oldest first
	waiters  map[int64]chan Version // offset -> PUT waiting for its record
	applied  int64                  // offset of the last API record applied
	running  int64                  // offset of the last API record the evaluator runs
	lastErr  error                  // of the last directory reload
	reloaded time.Time
}

func newRuleSet(dir string, opts dsl.Options) *ruleSet {
	return &ruleSet{dir: dir, opts: opts, fileOf: map[string]string{}, api: map[string]*dsl.Rule{},
		versions: map[string][]Version{}, waiters: map[int64]chan Version{}, applied: -1, running: -1}
}

// loadFiles (re)reads the directory and records a version for every rule
// whose text changed. On error the previous rules stay.
func (rs *ruleSet) loadFiles() ([]*dsl.Rule, error) {
	var rules []*dsl.Rule
	if rs.dir != "" {
		files, err := dsl.LoadDir(rs.dir, rs.opts)
		rs.mu.Lock()
		defer rs.mu.Unlock()
		rs.reloaded = time.Now()
		if err != nil {
			rs.lastErr = err
			return nil, err
		}
		for _, f := range files {
			rules = append(rules, f.Rules()...)
		}
	} else {
		rs.mu.Lock()
		defer rs.mu.Unlock()
	}
	rs.lastErr = nil
	fileOf := map[string]string{}
	now := time.Now().UTC()
	for _, r := range rules {
		fileOf[r.ID] = r.Pos.File
		vs := rs.versions[r.ID]
		if last, n := rs.last(r.ID, false); n == 0 || last.Source != r.Source || last.Deleted {
			rs.versions[r.ID] = append(vs, Version{ID: r.ID, Version: n + 1, Origin: r.Pos.File, Source: r.Source, At: now})
		}
	}
	for id, f := range rs.fileOf {
		if _, ok := fileOf[id]; !ok {
			_, n := rs.last(id, false)
			rs.versions[id] = append(rs.versions[id], Version{ID: id, Version: n + 1, Origin: f, Deleted: true, At: now})
		}
	}
	rs.files, rs.fileOf = rules, fileOf
	return rules, nil
}

// last returns the newest version of id from the API (api) or from the
// directory, and how many there are: the two are numbered apart, since
// each instance sees the directory's changes on its own. rs.mu is held.
func (rs *ruleSet) last(id string, api bool) (Version, int) {
	var last Version
	n := 0
	for _, v := range rs.versions[id] {
		if (v.Origin == "api") == api {
			last, n = v, n+1
		}
	}
	return last, n
}

// merged is the directory's rules then the API's, by id; a file wins over
// an API rule of the same id (the API refuses to create one).
func (rs *ruleSet) merged() []*dsl.Rule {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	out := slices.Clone(rs.files)
	var api []*dsl.Rule
	for id, r := range rs.api {
		if _, ok := rs.fileOf[id]; !ok {
			api = append(api, r)
		}
	}
	slices.SortFunc(api, func(a, b *dsl.Rule) int { return cmp.Compare(a.ID, b.ID) })
	return append(out, api...)
}

// applyRecord applies one record of polis.rules.v1. A version that does
// not follow the current one lost a race with another writer and is
// ignored; its writer is told so. The writer of a version that won is told
// by done, which the caller runs once the evaluator runs the rule, so that
// a PUT answered 200 is a rule already running.
func (rs *ruleSet) applyRecord(r *kgo.Record) (changed bool, done func(), err error) {
	var v Version
	if err := json.Unmarshal(r.Value, &v); err != nil || v.ID == "" {
		return false, nil, fmt.Errorf("cannot decode rule version at offset %d: %v", r.Offset, err)
	}
	var rule *dsl.Rule
	if !v.Deleted {
		if rule, err = dsl.LoadRule("api:"+v.ID, "api", []byte(v.Source), rs.opts); err != nil {
			// Compiled when saved: a version that no longer compiles (a
			// metric renamed since) is kept in history but not run.
			err = fmt.Errorf("cannot compile rule %s version %d: %w", v.ID, v.Version, err)
		}
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rs.applied = r.Offset
	w := rs.waiters[r.Offset]
	delete(rs.waiters, r.Offset)
	if _, n := rs.last(v.ID, true); v.Version != n+1 {
		if w != nil {
			w <- Version{} // lost
		}
		return false, nil, nil
	}
	rs.versions[v.ID] = append(rs.versions[v.ID], v)
	switch {
	case v.Deleted:
		delete(rs.api, v.ID)
	case rule != nil:
		rs.api[v.ID] = rule
	}
	if w != nil {
		done = func() { w <- v }
	}
	return true, done, err
}

// follow replays polis.rules.v1 and follows it.
func (s *Service) follow(ctx context.Context) error {
	caught := false
	f := kafka.NewFollower(s.o.Brokers, kafka.TopicRules, s.log, func(r *kgo.Record) {
		changed, done, err := s.set.applyRecord(r)
		if err != nil {
			s.log.Warn("rule from the API not loaded", "err", err)
		}
		if changed && caught {
			if err := s.apply(); err != nil {
				s.log.Error("cannot apply rules", "err", err)
			}
		}
		if done != nil {
			done()
		}
		s.set.mu.Lock()
		s.set.running = r.Offset
		s.set.mu.Unlock()
	}, s.o.Kafka.Opts()...)
	f.OnCaughtUp(func(n int) {
		caught = true
		if err := s.apply(); err != nil {
			s.log.Error("cannot apply rules", "err", err)
		}
		s.log.Info("API rules loaded", "versions", n)
		s.caughtUp()
	})
	return f.Run(ctx)
}

// watch reloads the directory when its files change, a moment after the
// last change (editors write a file in several steps).
func (s *Service) watch(ctx context.Context) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("cannot watch rules directory: %w", err)
	}
	defer w.Close()
	if err := w.Add(s.o.Dir); err != nil {
		return fmt.Errorf("cannot watch rules directory %s: %w", s.o.Dir, err)
	}
	const settle = 300 * time.Millisecond
	t := time.NewTimer(time.Hour)
	t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev := <-w.Events:
			if ev.Has(fsnotify.Chmod) && !ev.Has(fsnotify.Write) {
				continue
			}
			t.Reset(settle)
		case err := <-w.Errors:
			s.log.Warn("rules directory watch", "err", err)
		case <-t.C:
			s.Reload()
		}
	}
}

// Reload rereads the rules directory. A directory with an error is refused
// whole and the previous rules stay; the error is logged and shown by the
// API.
func (s *Service) Reload() error {
	if _, err := s.set.loadFiles(); err != nil {
		s.reloads.WithLabelValues("error").Inc()
		s.log.Error("rules directory not reloaded; the previous rules stay", "dir", s.o.Dir, "err", err)
		return err
	}
	if err := s.apply(); err != nil {
		s.reloads.WithLabelValues("error").Inc()
		return err
	}
	s.reloads.WithLabelValues("ok").Inc()
	s.log.Info("rules reloaded", "dir", s.o.Dir, "rules", len(s.ev.Rules()))
	return nil
}

// RuleInfo is a rule as the API shows it.
type RuleInfo struct {
	ID            string            `json:"id"`
	Group         string            `json:"group"`
	Origin        string            `json:"origin"` // "api" or the file's path
	Version       int               `json:"version"`
	Severity      string            `json:"severity"`
	Scope         ScopeInfo         `json:"scope"`
	Expr          string            `json:"expr"`
	Clear         string            `json:"clear,omitempty"`
	For           string            `json:"for,omitempty"`
	KeepFiringFor string            `json:"keep_firing_for,omitempty"`
	NoDataAfter   string            `json:"no_data_after,omitempty"`
	SiteDown      bool              `json:"site_down,omitempty"` // its open alerts hold back the site's others
	Labels        map[string]string `json:"labels,omitempty"`
	Summary       string            `json:"summary,omitempty"`
	Metrics       []string          `json:"metrics"`         // the points that evaluate it; empty: every point
	Clock         bool              `json:"clock,omitempty"` // also evaluated on the clock and on status changes
	Source        string            `json:"source"`
}

// ScopeInfo is a rule's scope.
type ScopeInfo struct {
	AssetTypes []string          `json:"asset_types,omitempty"`
	Regions    []string          `json:"regions,omitempty"`
	Sites      []string          `json:"sites,omitempty"`
	SiteLabels map[string]string `json:"site_labels,omitempty"`
}

func dur(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return d.String()
}

func (rs *ruleSet) info(r *dsl.Rule) RuleInfo {
	origin := "api"
	if f, ok := rs.fileOf[r.ID]; ok {
		origin = f
	}
	_, version := rs.last(r.ID, origin == "api")
	in := RuleInfo{ID: r.ID, Group: r.Group, Origin: origin, Version: version, Severity: r.Severity,
		Scope: ScopeInfo{r.Scope.AssetTypes, r.Scope.Regions, r.Scope.Sites, r.Scope.SiteLabels},
		Expr:  r.Cond.Source, For: dur(r.For), KeepFiringFor: dur(r.KeepFiringFor), NoDataAfter: dur(r.NoDataAfter), SiteDown: r.SiteDown,
		Labels: r.Labels, Summary: r.Summary.Source, Clock: r.Uses.Timer, Source: r.Source, Metrics: []string{}}
	if r.Clear != nil {
		in.Clear = r.Clear.Source
	}
	if !r.Uses.AnyMetric && r.NoDataAfter == 0 {
		in.Metrics = append(in.Metrics, r.Uses.Metrics...)
	}
	return in
}

// RulesInfo lists the rules being run, and the error of the last directory
// reload (the rules before it still run).
func (s *Service) RulesInfo() ([]RuleInfo, error) {
	rules := s.ev.Rules()
	s.set.mu.Lock()
	defer s.set.mu.Unlock()
	out := make([]RuleInfo, len(rules))
	for i, r := range rules {
		out[i] = s.set.info(r)
	}
	return out, s.set.lastErr
}

// RuleInfo returns one rule being run.
func (s *Service) RuleInfo(id string) (RuleInfo, bool) {
	r, ok := s.ev.Rule(id)
	if !ok {
		return RuleInfo{}, false
	}
	s.set.mu.Lock()
	defer s.set.mu.Unlock()
	return s.set.info(r), true
}

// Versions returns every version of a rule, oldest first: the API's from
// polis.rules.v1, the directory's as this instance saw them change.
func (s *Service) Versions(id string) ([]Version, bool) {
	s.set.mu.Lock()
	defer s.set.mu.Unlock()
	vs, ok := s.set.versions[id]
	return slices.Clone(vs), ok
}

// Check compiles a rule without saving it.
func (s *Service) Check(id string, src []byte) (*dsl.Rule, error) {
	r, err := dsl.LoadRule("api:"+id, "api", src, s.o.DSL)
	if err != nil {
		return nil, err
	}
	if id != "" && r.ID != id {
		return nil, fmt.Errorf("%w (%q, path %q)", ErrIDChanged, r.ID, id)
	}
	return r, nil
}

// Put saves a new version of an API rule. ifVersion, when not negative,
// must be the current version (0: the rule must not exist). The error is a
// dsl.ErrorList for a rule that does not compile.
func (s *Service) Put(ctx context.Context, id string, src []byte, by, comment string, ifVersion int) (Version, error) {
	if _, err := s.Check(id, src); err != nil {
		return Version{}, err
	}
	return s.write(ctx, Version{ID: id, Origin: "api", Source: string(src), By: by, Comment: comment}, ifVersion)
}

// Delete removes an API rule; its versions stay.
func (s *Service) Delete(ctx context.Context, id, by, comment string, ifVersion int) (Version, error) {
	return s.write(ctx, Version{ID: id, Origin: "api", Deleted: true, By: by, Comment: comment}, ifVersion)
}

func (s *Service) write(ctx context.Context, v Version, ifVersion int) (Version, error) {
	if len(s.o.Brokers) == 0 {
		return Version{}, ErrReadOnly
	}
	s.set.mu.Lock()
	if _, ok := s.set.fileOf[v.ID]; ok {
		s.set.mu.Unlock()
		return Version{}, ErrFileRule
	}
	last, cur := s.set.last(v.ID, true)
	exists := cur > 0 && !last.Deleted
	s.set.mu.Unlock()
	switch {
	case v.Deleted && !exists:
		return Version{}, ErrNotFound
	case ifVersion >= 0 && ifVersion != cur:
		return Version{}, fmt.Errorf("%w (current version %d, given %d)", ErrConflict, cur, ifVersion)
	}
	v.Version, v.At = cur+1, time.Now().UTC().Truncate(time.Millisecond)
	b, err := json.Marshal(v)
	if err != nil {
		return Version{}, fmt.Errorf("cannot encode rule version: %w", err)
	}
	done := make(chan int64, 1)
	var perr error
	s.o.Producer.Produce(ctx, &kgo.Record{Topic: kafka.TopicRules, Key: []byte(v.ID), Value: b}, func(r *kgo.Record, err error) {
		perr = err
		done <- r.Offset
	})
	var offset int64
	select {
	case offset = <-done:
		if perr != nil {
			return Version{}, fmt.Errorf("cannot save rule %s: %w", v.ID, perr)
		}
	case <-ctx.Done():
		return Version{}, fmt.Errorf("cannot save rule %s: %w", v.ID, ctx.Err())
	}
	wait := make(chan Version, 1)
	s.set.mu.Lock()
	if offset <= s.set.applied { // the follower was quicker than the ack
		var found Version
		for _, got := range s.set.versions[v.ID] {
			if got.Origin == "api" && got.Version == v.Version && got.At.Equal(v.At) && got.By == v.By {
				found = got
			}
		}
		s.set.mu.Unlock()
		if found.ID == "" {
			return Version{}, ErrConflict
		}
		// Answer once the evaluator runs it, a moment after the follower
		// recorded it.
		for {
			s.set.mu.Lock()
			running := s.set.running >= offset
			s.set.mu.Unlock()
			if running {
				return found, nil
			}
			select {
			case <-ctx.Done():
				return Version{}, fmt.Errorf("rule %s saved, not yet loaded: %w", v.ID, ctx.Err())
			case <-time.After(5 * time.Millisecond):
			}
		}
	}
	s.set.waiters[offset] = wait
	s.set.mu.Unlock()
	select {
	case got := <-wait:
		if got.ID == "" {
			return Version{}, ErrConflict
		}
		return got, nil
	case <-ctx.Done():
		s.set.mu.Lock()
		delete(s.set.waiters, offset)
		s.set.mu.Unlock()
		return Version{}, fmt.Errorf("rule %s saved, not yet loaded: %w", v.ID, ctx.Err())
	}
}
