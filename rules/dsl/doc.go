// Package dsl is the rule language of Polis: YAML rule files whose
// conditions are expr (github.com/expr-lang/expr) expressions over a typed
// environment, compiled and type-checked when loaded. It knows nothing of
// the alert lifecycle (pending, firing, resolved), which rules/engine runs.
//
// # File format
//
// Like a Prometheus alerting rule file; unknown keys are errors, and every
// error reads file:line:col: rule "id": message.
//
//	groups:
//	  - name: atm
//	    rules:
//	      - id: atm_cash_low            # [a-z][a-z0-9_]*, unique across the rule directory
//	        scope:                      # optional; an empty list matches everything
//	          asset_types: [atm]
//	          regions: [Lazio]
//	          sites: [PO-058091-1]
//	          site_labels: {tier: gold}
//	        expr: last("cassette1_pct") < 10   # required, bool
//	        for: 15m                    # optional; Go or Prometheus durations (90s, 1h30m, 1d, 1w)
//	        clear: '!(last("cassette1_pct") < 25)'  # optional hysteresis, bool
//	        keep_firing_for: 5m         # optional
//	        no_data_after: 2h           # optional: the asset silent this long puts the alert in NoData
//	        site_down: false            # optional: true for a rule detecting its whole site down;
//	                                    # while its alert is open the site's other alerts are held back
//	        severity: warning           # required: info, warning or critical
//	        labels: {team: cash}        # optional
//	        summary: 'ATM {{ asset.id }}: {{ last("cassette1_pct") }}%'
//
// Block scalars (| and >) are welcome for long expressions; errors inside
// them point at the file line. YAML aliases are refused.
//
// # Summary
//
// Text with {{ expression }} parts: each part is an expr expression over
// the same environment as the conditions (not a Go text/template), so a
// summary can say what a condition can, and it is type-checked at load.
// Numbers print in their shortest exact form, NaN as "n/a".
//
// # Environment
//
//	metric string, value float, ts time   the point being evaluated ("" / 0 on a timer)
//	asset.id .type .status                status: unknown, online, offline, stale, fault
//	asset.props.NAME                      reported properties (any)
//	asset.metrics.NAME                    latest values; 0 when absent, prefer last("NAME")
//	site.id .region .province .kind .open_now .labels.NAME
//	site.assets .chargers .chargers_free .lockers .locker_free .totems .totems_up
//	site.atms .atms_up .pvs .pv_power_kw .pv_energy_today_kwh .temp_c .humidity_pct
//	site.co2_ppm .desks .desks_occupied .rooms .rooms_occupied
//
// # Functions
//
// now is always ts, the point's event time, never the wall clock (the
// builtin now() is disabled; min and max are the history functions below).
//
//	avg(metric string, window string) float   mean over (ts-window, ts]
//	min(metric, window) float, max(metric, window) float
//	delta(metric, window) float               newest minus oldest point in the window
//	rate(metric, window) float                delta per second
//	count_over(metric, window) int            points in the window
//	silent_for() float                        minutes since the asset's newest point
//	last(metric string) float                 latest value from the twin
//	province_avg(metric string) float         mean of the province's peers (engine-provided)
//	hour() int                                0-23 in Europe/Rome
//	weekday() int                             1 = Monday .. 7 = Sunday, Europe/Rome
//	holiday() bool                            Italian national holiday (Easter Monday computed)
//	open_now() bool                           site opening hours, as the engine computes them
//
// A function with no data returns NaN (silent_for too, for an asset that has
// never reported), and every comparison with NaN is false, so a rule stays
// quiet rather than firing on missing data. Window literals and metric
// literals are checked at load against the fleet's metric names, with a
// did-you-mean.
//
// # When a rule is evaluated
//
// Compiling a rule records what it reads (Uses). A telemetry point
// evaluates the rules whose scope matches and that read its metric (or no
// metric literal at all, or value). A rule reading silent_for(), hour(),
// weekday(), holiday(), open_now(), asset.status or asset.props is also a
// clock rule: the engine evaluates it every 10 seconds and when the twin
// applies a connection or property change, with metric "" and ts = now.
package dsl
