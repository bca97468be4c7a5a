// Package milestone computes the Polis programme's public milestones from
// the twin: how many assets (or sites) stand in given lifecycle states,
// against the targets the programme announced, so that the public portal
// can show progress with the source of every target.
//
// A milestone file is YAML:
//
//	milestones:
//	  - id: atm_installed_7000            # lower case letters, digits and _
//	    title: "Advanced ATMs installed"
//	    title_it: "ATM evoluti installati"  # optional: the title in Italian, for the public portal
//	    line: sportello_unico              # programma | sportello_unico | spazi_per_italia
//	    count: assets                      # assets | sites
//	    where: asset.type == "atm" && asset.lifecycle in ["operational", "faulty"]
//	    target: 7000                       # a positive whole number
//	    deadline: 2026-12-31               # YYYY-MM-DD, due by the end of that day (Europe/Rome)
//	    start: 2022-01-01                  # optional, default 2022-01-01: where the linear pace starts
//	    source: {fact: F16, url: "https://..."}
//
// where is an expr-lang expression that must be a bool. With count: assets
// it is asked of every asset of every site and sees
//
//	asset: id, type, lifecycle, supplier
//	site:  id, kind, name, region, province, comune, inner_area, population,
//	       assets (a list of assets as above)
//	assets_in(type, state, ...)  how many of the site's assets of that type are in one of the states
//	all_assets_in(state, ...)    every asset of the site is in one of the states (false for a site without assets)
//
// With count: sites it is asked of every site and sees the same names but
// asset. String literals naming a lifecycle state, an asset type or a site
// kind are checked when the file is loaded, so that a typo is refused
// instead of silently counting nothing.
//
// Load refuses a bad file with every problem it finds (up to a bound), each
// positioned as file:line:col inside the YAML, including faults inside a
// where expression. Compute is pure: no I/O, no clock.
package milestone
