// Package ruletest runs unit tests of alert rules, like Prometheus'
// `promtool test rules`: a fixture file gives a small fleet, input points
// and twin states over time, and the alerts expected at given times; the
// rules run on the real evaluator (rules.Evaluator), twin (twin/state) and
// registry, with an event-time clock, so a test says exactly what the
// platform would do. It is what `polis rules test FILE...` runs.
//
// # Fixture format
//
// YAML; unknown keys are errors, and every error reads file:line:col:
// message. Aliases (*name) are refused. A complete example:
//
//	rule_files: [../../pack/polis.yaml]  # relative to this file; globs allowed
//	interval: 1m          # how often the clock ticks (Evaluator.Tick); default 1m
//	sites:                # the registry of the test: a small fleet
//	  - id: PO-001272-1                # PO-<ISTAT code>-<n> or CW-<province>-<n>
//	    kind: post_office              # or coworking; default post_office
//	    name: Torino 12                # optional
//	    region: Piemonte               # optional, for scope.regions
//	    province: TO                   # optional
//	    opening_hours: "Mon-Fri 08:20-13:45; Sat 08:20-12:45"  # optional; none: open_now() is false
//	    assets: [atm-1, totem-1, env-1]  # the type is the id's prefix before "-"
//	tests:
//	  - name: a cassette below 10% fires after 15 minutes
//	    start: 2026-03-02T09:00:00+01:00  # RFC 3339; the clock starts here
//	    input:            # in time order; at is an offset from start
//	      - {at: 0m..15m/5m, asset: PO-001272-1/atm-1, m: {cassette1_pct: 8, cassette2_pct: 50}}  # a series
//	      - {at: 0m, asset: PO-001272-1/totem-1, m: {online: 1}}
//	      - {at: 0m..30m/1m, asset: PO-001272-1/env-1, m: {co2_ppm: 1500}}
//	      - {at: 0m, asset: PO-001272-1/env-1, reported: {firmware: "1.2"}}  # reported properties
//	      - {at: 1m, asset: PO-001272-1/totem-1, status: offline}           # connection status
//	      - {at: 20m, asset: PO-001272-1/atm-1, m: {cassette1_pct: 100, cassette2_pct: 50}}
//	      - {at: 25m, asset: PO-001272-1/totem-1, status: online}
//	    expect:           # in time order
//	      - at: 10m
//	        alerts:
//	          - {rule: atm_cash_low, asset: PO-001272-1/atm-1, state: pending}
//	          - {rule: totem_offline, asset: PO-001272-1/totem-1, state: pending}
//	      - at: 16m
//	        alerts:
//	          - rule: atm_cash_low
//	            asset: PO-001272-1/atm-1
//	            state: firing            # pending, firing, nodata or resolved; default firing
//	            summary: "ATM atm-1 at PO-001272-1: a cassette is below 10% (cash n/a EUR)"  # optional, exact
//	            labels: {team: cash}     # optional, a subset of the alert's labels
//	          - {rule: totem_offline, asset: PO-001272-1/totem-1}
//	      - at: 20m
//	        alerts:
//	          - {rule: atm_cash_low, asset: PO-001272-1/atm-1, state: resolved}  # checked explicitly
//	          - {rule: totem_offline, asset: PO-001272-1/totem-1}
//	      - at: 30m
//	        alerts: []                   # no open alert of any rule
//
// An expected alert may also say held_by: RULE, the site-down rule (a
// rule with site_down: true) whose open alert holds it back, or "" for an
// alert that must not be held.
//
// Durations (interval, at, series) are Go or Prometheus durations: 90s,
// 15m, 1h30m, 1d; at most 366d.
//
// # Inputs
//
// Each input names one asset as SITE/ASSET, which must be in sites, and
// exactly one of:
//
//   - m: telemetry, metric: value (metric names of the fleet, see
//     dsl.DefaultMetrics). It becomes a record.KindTelemetry record, every
//     point at the input's time, applied to the twin, then evaluated
//     (Evaluator.Point): the rules whose scope and metrics match run.
//   - status: online or offline, the MQTT connection status. It becomes a
//     record.KindStatus record applied to the twin.
//   - reported: a mapping of reported properties (any YAML values, sent as
//     JSON), read by rules as asset.props. It becomes a
//     record.KindReported record applied to the twin. Reported properties
//     are not telemetry: they do not make an asset less silent.
//
// As in the platform (rules.Service.Applied), a status or reported record
// that changes the asset's connection or status runs the asset's clock
// rules at once (Evaluator.Status), so that an offline totem is noticed
// before the next tick. Every record is received at its source time, so
// staleness (a totem silent for 3 × 5 minutes is stale) follows the clock.
//
// at is an offset from start, or a series FROM..TO/STEP: the same input
// every STEP from FROM to TO, both included (STEP defaults to interval).
// Entries are listed in order of their (first) time; a series may overlap
// the entries after it. Inputs at one instant are applied in the order
// they are listed. A test expands to at most 100,000 input events and
// 200,000 ticks.
//
// # Evaluation
//
// Each test starts from an empty twin and alert state. Time moves in
// events: the clock ticks at start, start+interval, start+2×interval...
// (Evaluator.Tick: clock rules such as silent_for() and asset.status run
// for every asset that has reported, pending alerts whose for elapsed
// fire, keep_firing_for runs out) and at every expect time. At each tick,
// first every input at or before it is applied, then the clock ticks, then
// the expectation of that time, if any, is checked. Inputs after the last
// expect are never applied.
//
// # Expectations
//
// At an expect time, the alerts in state pending, firing or nodata (the
// open ones) must be exactly those listed: a missing alert, one in another
// state, and an open alert not listed are all failures. An alert listed
// with state resolved must exist and be resolved (resolved alerts are
// otherwise not compared). A rule has one alert per asset, so (rule,
// asset) may be listed once per expect. Rules must exist in rule_files.
//
// # Output
//
// One line per test, PASS or FAIL and its name; a failed test is followed
// by one indented line per mismatch:
//
//	FAIL every kind of mismatch
//	    at 10m (2026-03-02T09:10:00+01:00): missing firing atm_cash_low PO-001272-1/atm-1 (it is pending)
//	    at 10m (2026-03-02T09:10:00+01:00): unexpected pending totem_offline PO-001272-1/totem-1: "Totem totem-1 at ..."
//	    at 16m (2026-03-02T09:16:00+01:00): firing atm_cash_low PO-001272-1/atm-1: summary = "...", want "..."
//	    at 16m (2026-03-02T09:16:00+01:00): firing atm_cash_low PO-001272-1/atm-1: label team = "cash", want "logistics"
//
// A rule that fails at run time (an expression error on real data) fails
// its test too, with an "evaluation error" line, once per distinct error.
//
// A fixture that cannot be used (unreadable, invalid, a rule file that
// does not compile, a rule_files pattern that matches nothing) is an error
// of RunFile and Run, not a failed test.
package ruletest
