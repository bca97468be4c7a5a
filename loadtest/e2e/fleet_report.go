package e2e

import (
	"fmt"
	"runtime"
	"slices"
	"strings"
	"time"
)

// Markdown is the fleet run's report; the plots are the SVG files beside
// it (one per scenario).
func (r *FleetResults) Markdown() string {
	var b strings.Builder
	c := r.Config
	fmt.Fprintf(&b, "### Full-fleet load test (%s)\n\n", r.Started.UTC().Format("2006-01-02 15:04 UTC"))
	m := r.Machine
	fmt.Fprintf(&b, "**Machine:** %d CPUs, %s, %s RAM, %s  \n", m.CPUs, orUnknown(m.Model), m.MemTotal, orUnknown(m.Kernel))
	fmt.Fprintf(&b, "**Go:** %s  \n**ClickHouse:** %s (%s)  \n", runtime.Version(), orUnknown(r.CH.Version), chWhere(r.CH))
	if !c.SkipMosquitto {
		fmt.Fprintf(&b, "**mosquitto:** %s  \n", orUnknown(r.Mosquitto))
	}
	fmt.Fprintf(&b, "**Command:** `%s`  \n**Took:** %s\n\n", c.CommandLine, r.Took.Round(time.Second))
	if len(c.ServeArgs) > 0 {
		fmt.Fprintf(&b, "Every `polis serve` also had `%s`.\n\n", strings.Join(c.ServeArgs, " "))
	}
	fmt.Fprintf(&b, "Fleet: `registry.Generate` with %s post offices and %s coworking spaces (seed 1): %s sites, %s assets, %s gateways. "+
		"Each scenario starts its own Kafka-protocol cluster (the platform's embedded kfake, in a process of its own), "+
		"as many `polis serve` processes as the connections need (at most %s each: one process may hold only `ulimit -Hn` sockets, 20,000 here), "+
		"one `polis simulate` per platform process, dialling from its own 127.0.0.x address; ClickHouse is shared. "+
		"The simulators connect, hold every connection silent for %s, then publish at QoS 1 for %s. "+
		"A latency probe (its own device login) publishes one point every %s and polls ClickHouse for it.\n\n",
		num(c.Sites), num(c.Coworking), num(r.Fleet.Sites), num(r.Fleet.Assets), num(r.Fleet.Gateways),
		num(c.PerProcess), c.Hold, c.Duration, probeInterval)
	if len(r.Problems) > 0 {
		b.WriteString("**Problems:**\n\n")
		for _, p := range r.Problems {
			fmt.Fprintf(&b, "- %s\n", p)
		}
		b.WriteString("\n")
	}
	b.WriteString("| scenario | connections held | accepted msgs/s | points/s | rows/s into ClickHouse | publish → queryable p50 / p99 / max | every point once | platform CPU publishing / held idle (cores) | platform RSS per held connection | mosquitto msgs/s | Polis / mosquitto |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, s := range r.Scenarios {
		lat := "—"
		if p := s.Probe; p != nil && len(p.SeenLat) > 0 {
			lat = fmt.Sprintf("%s / %s / %s", ms(percentile(p.SeenLat, 0.5)), ms(percentile(p.SeenLat, 0.99)), ms(p.SeenLat[len(p.SeenLat)-1]))
		}
		once := "no"
		if s.Reached && s.RowsAfter == s.Expected && s.RowsFinal == s.Expected {
			once = "**yes**"
		}
		mq, ratioS := "—", "—"
		if mo := s.Mosquitto; mo != nil && mo.Accepted > 0 {
			mq = num(int64(mo.Accepted))
			ratioS = ratioCell(s)
		}
		pointsPS := 0.0
		if s.Stats.Sent > 0 {
			pointsPS = s.Accepted * float64(s.Stats.Points) / float64(s.Stats.Sent)
		}
		fmt.Fprintf(&b, "| %s | %s | **%s** | %s | %s | %s | %s | %.2f / %.2f | %s |  %s | %s |\n",
			s.Scenario.Name(), num(s.Held), num(int64(s.Accepted)), num(int64(pointsPS)), num(int64(s.RowsPerSec)), lat, once,
			s.LoadCPU[compPlatform], s.IdleCPU[compPlatform], perConn(s.Loaded.RSS-s.Base.RSS, s.Held), mq, ratioS)
	}
	b.WriteString("\n")
	for _, s := range r.Scenarios {
		r.scenarioSection(&b, s)
	}
	return b.String()
}

func (r *FleetResults) scenarioSection(b *strings.Builder, s *ScenarioResult) {
	name := s.Scenario.Name()
	fmt.Fprintf(b, "#### %s\n\n![%s: throughput, connections, CPU, memory and Kafka lag over time](%s.svg)\n\n", name, name, name)
	load := "as fast as acknowledgements allow"
	switch {
	case s.Scenario.Intervals:
		load = "each device once per its model's reporting interval (`loadtest.Interval`)"
	case s.Scenario.Rate > 0:
		load = fmt.Sprintf("%s msgs/s over the fleet", num(int64(s.Scenario.Rate)))
	}
	mode := "one connection per site gateway"
	if s.Scenario.Direct {
		mode = "one connection per device"
	}
	fmt.Fprintf(b, "%s (%s connections planned over %d platform process(es), %s devices publishing), %s.\n\n", mode, num(s.Planned), s.Processes, num(s.Devices), load)
	b.WriteString("| measure | value |\n|---|---|\n")
	row := func(k, v string) { fmt.Fprintf(b, "| %s | %s |\n", k, v) }
	row("connections the platform held at once (most seen)", num(s.Held))
	row("messages published / acknowledged / errors", fmt.Sprintf("%s / %s / %s", num(s.Stats.Sent), num(s.Stats.Acked), num(s.Stats.Errors)))
	row("telemetry points published", num(s.Stats.Points))
	row("**accepted msgs/s** (acknowledged ÷ the longest simulator's publishing time)", fmt.Sprintf("**%s** over %s", num(int64(s.Accepted)), s.Stats.Elapsed.Round(time.Millisecond)))
	row("publishes the platform put in Kafka per second, device status included (its own counter, over the "+s.Publish.Round(time.Millisecond).String()+" every simulator published in)", num(int64(s.Ingested)))
	row("rows queryable when publishing stopped", fmt.Sprintf("%s of %s", num(s.RowsAtPublishEnd), num(s.Expected)))
	row("end of publishing → all rows queryable", ms(s.Drain))
	row("**rows/s into ClickHouse** (rows ÷ first publish → all queryable)", "**"+num(int64(s.RowsPerSec))+"**")
	row("rows after shutdown: count() / count() FINAL / points published", fmt.Sprintf("%s / %s / %s", num(s.RowsAfter), num(s.RowsFinal), num(s.Expected)))
	if p := s.Probe; p != nil {
		if len(p.SeenLat) > 0 {
			row("**publish → queryable** (probe) p50 / p90 / p99 / max", fmt.Sprintf("**%s / %s / %s / %s** (%d probes)",
				ms(percentile(p.SeenLat, 0.5)), ms(percentile(p.SeenLat, 0.9)), ms(percentile(p.SeenLat, 0.99)), ms(p.SeenLat[len(p.SeenLat)-1]), len(p.SeenLat)))
		}
		if len(p.AckLat) > 0 {
			row("publish → PUBACK (probe) p50 / p99 / max", fmt.Sprintf("%s / %s / %s", ms(percentile(p.AckLat, 0.5)), ms(percentile(p.AckLat, 0.99)), ms(p.AckLat[len(p.AckLat)-1])))
		}
	}
	row("platform memory at start, no connection (RSS; Go heap + stacks)", fmt.Sprintf("%s; %s", mib(s.Base.RSS), mibOr(s.Base.Heap)))
	row("platform memory with every connection held (RSS; Go heap + stacks)", fmt.Sprintf("%s; %s", mib(s.Loaded.RSS), mibOr(s.Loaded.Heap)))
	heapPer := "unknown"
	if s.Base.Heap >= 0 && s.Loaded.Heap >= 0 {
		heapPer = perConn(s.Loaded.Heap-s.Base.Heap, s.Held)
	}
	row("**platform memory per held connection** (RSS; Go heap + stacks)", fmt.Sprintf("**%s**; %s", perConn(s.Loaded.RSS-s.Base.RSS, s.Held), heapPer))
	if s.Processes > 0 && r.Fleet.Assets > 0 {
		row("platform RSS at start per asset (registry, twin and lifecycle of every asset in each process)",
			perConn(s.Base.RSS/int64(s.Processes), r.Fleet.Assets))
	}
	row("CPU with every connection held, nothing published ("+s.Hold.Round(100*time.Millisecond).String()+")", cpuCell(s.IdleCPU))
	row("CPU while publishing", cpuCell(s.LoadCPU))
	row("peak resident memory", rssCell(s.PeakRSS))
	if mo := s.Mosquitto; mo != nil {
		row("mosquitto reference: acknowledged msgs/s", fmt.Sprintf("%s (%s sent, %s acknowledged, %s errors, %d process(es))",
			num(int64(mo.Accepted)), num(mo.Stats.Sent), num(mo.Stats.Acked), num(mo.Stats.Errors), mo.Processes))
		row("mosquitto reference: CPU while publishing", cpuCell(mo.LoadCPU))
		if mo.Accepted > 0 {
			row("**Polis / mosquitto**", ratioCell(s))
		}
	}
	for _, k := range []string{"polis_ingest_deadletter_total", "polis_broker_refused_total", "polis_ingest_late_points_total"} {
		if v, ok := s.Metrics[k]; ok {
			row("`"+k+"`", num(int64(v)))
		}
	}
	b.WriteString("\n")
	if p := s.Profile; p != nil {
		if len(p.Shares) > 0 {
			fmt.Fprintf(b, "Where platform process 1's CPU went while publishing (`%s`, %s; each sample charged to the first frame, from the leaf, outside Go's standard library):\n\n", p.Path, p.Duration.Round(time.Second))
			b.WriteString("| owner | share of CPU |\n|---|---|\n")
			for i, sh := range p.Shares {
				if i == 14 {
					break
				}
				fmt.Fprintf(b, "| %s | %.1f%% |\n", sh.Part, 100*sh.Fraction)
			}
			b.WriteString("\n")
		}
		if p.TopFlat != "" {
			fmt.Fprintf(b, "<details><summary>Top 15 functions by flat and by cumulative time</summary>\n\n```\n%s\n```\n\n```\n%s\n```\n\n</details>\n\n", p.TopFlat, p.TopCum)
		}
		if p.Error != "" {
			fmt.Fprintf(b, "Profile: %s\n\n", p.Error)
		}
	}
	if len(s.Problems) > 0 {
		b.WriteString("Problems:\n\n")
		for _, p := range s.Problems {
			fmt.Fprintf(b, "- %s\n", p)
		}
		b.WriteString("\n")
	}
}

// ratioCell compares the acknowledged rates; under an offered load both
// take what is offered, and the ratio says only whether Polis kept up.
func ratioCell(s *ScenarioResult) string {
	mo := s.Mosquitto
	r := s.Accepted / mo.Accepted
	if s.Scenario.Intervals || s.Scenario.Rate > 0 {
		return fmt.Sprintf("%.2f× (offered load)", r)
	}
	return fmt.Sprintf("**%.2f×**", r)
}

func chWhere(ch CHInfo) string {
	if ch.Private {
		return "private server started by the test on " + ch.Addr
	}
	return "external server " + ch.Addr
}

func cpuCell(m map[string]float64) string {
	var parts []string
	for _, c := range []string{compPlatform, compSimulator, compClickHouse, compKafka, compMosquitto, "machine"} {
		if v, ok := m[c]; ok {
			parts = append(parts, fmt.Sprintf("%s %.2f", c, v))
		}
	}
	if len(parts) == 0 {
		return "unknown"
	}
	return strings.Join(parts, ", ") + " cores"
}

func rssCell(m map[string]int64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, k+" "+mib(m[k]))
	}
	if len(parts) == 0 {
		return "unknown"
	}
	return strings.Join(parts, ", ")
}

func mib(n int64) string { return fmt.Sprintf("%s MiB", num(n>>20)) }

func mibOr(n int64) string {
	if n < 0 {
		return "unknown"
	}
	return mib(n)
}

// perConn is bytes ÷ n as KiB.
func perConn(bytes int64, n int) string {
	if n <= 0 {
		return "—"
	}
	return fmt.Sprintf("%.1f KiB", float64(bytes)/float64(n)/1024)
}
