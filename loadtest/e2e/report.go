package e2e

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/polis-platform/polis/app"
)

// Markdown renders the results as the report pasted into docs/benchmarks.md.
func (r *Results) Markdown() string {
	var b strings.Builder
	c := r.Config
	m := r.Machine
	f := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }

	f("## End-to-end load test of the ingest spine (%s)\n\n", r.Started.UTC().Format("2006-01-02 15:04 UTC"))
	f("**Machine:** %d CPUs (`nproc`; GOMAXPROCS %d), %s, %s RAM, Linux %s, %s/%s  \n", m.CPUs, m.GOMAXPROCS, m.Model, m.MemTotal, m.Kernel, m.OS, m.Arch)
	f("**Go:** %s  \n", m.GoVersion)
	where := "external server at " + r.CH.Addr
	if r.CH.Private {
		where = "private server started by the test on " + r.CH.Addr
	}
	f("**ClickHouse:** %s (%s)  \n", orUnknown(r.CH.Version), where)
	if r.Mosquitto != nil {
		f("**mosquitto:** %s  \n", r.Mosquitto.Version)
	}
	f("**Command:** `%s`  \n", c.CommandLine)
	f("**Took:** %s\n\n", r.Took.Round(time.Second))

	f("Fleet: `registry.Generate` with %d post offices and %d coworking spaces (seed 1): %s sites, %s assets, %s site gateways. "+
		"The simulator publishes every asset through its site's gateway (%s MQTT connections), QoS %d, as fast as acknowledgements allow, "+
		"for %s of publishing (connecting is not counted), simulated clock at %gx real time and ending near now "+
		"(at that speed a clock starting now would run more than 5 minutes ahead and be refused as `future_timestamp`; points older than 10 minutes are accepted and marked late). "+
		"Platform: `app.Start` in this process with the embedded Kafka (kfake, %d partitions), writer max rows %s and max wait %s, producer linger %s, rules %s. "+
		"The simulator runs in the same process as the platform and shares its %d CPUs; ClickHouse is a separate process on the same machine.\n\n",
		c.Sites, c.Coworking, num(r.Fleet.Sites), num(r.Fleet.Assets), num(r.Fleet.Gateways), num(r.Fleet.Gateways), c.QoS,
		c.Duration, c.Speed, app.Defaults().KafkaPartitions, num(c.WriterMaxRows), c.WriterMaxWait, c.KafkaLinger, rulesLabel(c.RulesDir), m.CPUs)

	if len(r.Problems) > 0 {
		f("### ⚠ Problems\n\n")
		for _, p := range r.Problems {
			f("- **%s**\n", p)
		}
		f("\n")
	}

	r.polisSection(&b)
	r.probeSection(&b)
	r.profileSection(&b)
	r.mosquittoSection(&b)
	r.bulkSection(&b)
	return b.String()
}

func (r *Results) polisSection(b *strings.Builder) {
	f := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	f("### 1. Polis end to end (MQTT → broker → ingest → Kafka → storage writer → ClickHouse)\n\n")
	p := r.Polis
	if p == nil || p.Stats.Sent == 0 {
		f("Not measured (see problems).\n\n")
		return
	}
	st := p.Stats
	secs := st.Elapsed.Seconds()
	f("| measure | value |\n|---|---|\n")
	f("| platform start (schema, Kafka, writer, broker) | %s |\n", p.Startup.Round(time.Millisecond))
	f("| simulator connect (%s gateways) | %s |\n", num(r.Fleet.Gateways), p.Connect.Round(time.Millisecond))
	f("| publishing time | %s |\n", st.Elapsed.Round(time.Millisecond))
	f("| messages published / acknowledged / errors | %s / %s / %s |\n", num(st.Sent), num(st.Acked), num(st.Errors))
	f("| of which events | %s |\n", num(st.Events))
	f("| telemetry points published | %s |\n", num(st.Points))
	f("| **messages/s published** | **%s** |\n", rate(float64(st.Sent), secs))
	f("| **points/s published** | **%s** |\n", rate(float64(st.Points), secs))
	f("| rows queryable when publishing stopped | %s (%.1f%%) |\n", num(p.RowsAtPublishEnd), pct(p.RowsAtPublishEnd, p.Expected))
	if p.Reached {
		f("| end of publishing → all rows queryable | %s |\n", p.Drain.Round(time.Millisecond))
		f("| first publish → all rows queryable | %s |\n", p.ToQueryable.Round(time.Millisecond))
		f("| **rows/s into ClickHouse** (rows ÷ first publish → all queryable) | **%s** |\n", rate(float64(p.Rows), p.ToQueryable.Seconds()))
	} else {
		f("| rows queryable after waiting %s | %s of %s |\n", r.Config.DrainTimeout, num(p.Rows), num(p.Expected))
	}
	f("| rows in `%s.telemetry` after shutdown: count() / count() FINAL | %s / %s |\n", r.Config.Database, num(p.RowsAfter), num(p.RowsFinal))
	eq := "**yes**, exactly"
	switch {
	case p.RowsAfter != p.Expected && p.Baseline > 0:
		eq = fmt.Sprintf("**NO — %+d rows; the table was not empty, see problems**", int64(p.RowsAfter)-int64(p.Expected))
	case p.RowsAfter != p.Expected:
		eq = fmt.Sprintf("**NO — %+d rows: a bug, see problems**", int64(p.RowsAfter)-int64(p.Expected))
	}
	f("| rows == points published | %s |\n", eq)
	if v, ok := p.Metrics["polis_ingest_points_total"]; ok {
		probes := 0
		if r.Probe != nil {
			probes = r.Probe.Acked
		}
		f("| `polis_ingest_points_total` (includes %s acknowledged probe points) | %s |\n", num(probes), num(uint64(v)))
		f("| `polis_ingest_late_points_total` | %s |\n", num(uint64(p.Metrics["polis_ingest_late_points_total"])))
		f("| `polis_ingest_deadletter_total` / `polis_broker_refused_total` | %s / %s |\n",
			num(uint64(p.Metrics["polis_ingest_deadletter_total"])), num(uint64(p.Metrics["polis_broker_refused_total"])))
	}
	if p.CPU.Wall > 0 {
		f("| CPU, first publish → all queryable (%s) | %s |\n", p.CPU.Wall.Round(time.Millisecond),
			cpuLine(p.CPU, "this process (platform + simulator)", "clickhouse-server", r.Machine.CPUs))
	}
	f("| platform shutdown (drain Kafka into ClickHouse) | %s |\n\n", p.Shutdown.Round(time.Millisecond))
	r.limits(b)
	if dl := labelled(p.Metrics, "polis_ingest_deadletter_total{"); dl != "" {
		f("Dead letters by reason: %s\n\n", dl)
	}
	if rf := labelled(p.Metrics, "polis_broker_refused_total{"); rf != "" {
		f("Broker refusals by reason: %s\n\n", rf)
	}
}

func (r *Results) probeSection(b *strings.Builder) {
	f := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	f("### 2. Publish → queryable latency (under the load above)\n\n")
	p := r.Probe
	if p == nil {
		f("Not measured (see problems).\n\n")
		return
	}
	f("A separate paho client logged in as device `%s` publishes one point (`%s`) at QoS 1 every %s while the simulator runs; "+
		"a poller queries ClickHouse every %s (`SELECT value FROM %s.telemetry WHERE site=? AND asset=? AND metric='%s' AND ts >= toDateTime(?) AND value > ?`, mean query %s, %s polls, %d failed). "+
		"Queryable latency = start of the first poll that returned the row − publish time (resolution: the poll interval plus a query). "+
		"The writer flushes a batch at %s rows or %s after its first record, whichever comes first, so at this rate the batch wait dominates (vary it with `-writer-max-wait`).\n\n",
		p.Device, probeMetric, probeInterval, probePoll, r.Config.Database, probeMetric, p.PollTime.Round(100*time.Microsecond), num(p.Polls), p.PollErrors,
		num(r.Config.WriterMaxRows), r.Config.WriterMaxWait)
	f("| | probes | p50 | p90 | p99 | max |\n|---|---|---|---|---|---|\n")
	row := func(name string, ds []time.Duration) {
		f("| %s | %d | %s | %s | %s | %s |\n", name, len(ds), ms(percentile(ds, .5)), ms(percentile(ds, .9)), ms(percentile(ds, .99)), ms(percentile(ds, 1)))
	}
	row("publish → PUBACK (Kafka has the record)", p.AckLat)
	row("**publish → queryable in ClickHouse**", p.SeenLat)
	f("\n%d probes sent, %d acknowledged, %d seen in ClickHouse.\n\n", p.Sent, p.Acked, p.Seen)
}

func (r *Results) profileSection(b *strings.Builder) {
	f := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	f("### 3. CPU profile of the Polis phase\n\n")
	p := r.Profile
	if p == nil {
		f("Not taken (see problems).\n\n")
		return
	}
	f("`%s`, %s from the first publish until every row was queryable. The platform (MQTT broker, ingest, Kafka producer, "+
		"the embedded kfake cluster, storage writer, clickhouse-go) **and the simulator** (paho clients, device models) run in this one process, "+
		"so the profile shows both; ClickHouse is a separate process and is not in it. "+
		"Open it with `go tool pprof -http=: %s`.\n\n", p.Path, p.Duration.Round(time.Millisecond), p.Path)
	if p.Error != "" {
		f("Profile problem: %s\n\n", p.Error)
	}
	if p.Tags != "" {
		f("CPU by component (pprof labels set on the goroutines that start each part; goroutines inherit them; unlabelled samples are the Go runtime's own — mostly background GC — and clickhouse-go/kgo goroutines started outside a label):\n\n```\n%s\n```\n\n", p.Tags)
	}
	if p.TopFlat != "" {
		f("Top 15 by flat time (`go tool pprof -top -nodecount=15`):\n\n```\n%s\n```\n\n", p.TopFlat)
	}
	if p.TopCum != "" {
		f("Top 15 by cumulative time (`go tool pprof -top -cum -nodecount=15`):\n\n```\n%s\n```\n\n", p.TopCum)
	}
}

func (r *Results) mosquittoSection(b *strings.Builder) {
	f := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	f("### 4. Baseline: the same simulator against Debian's mosquitto\n\n")
	mq := r.Mosquitto
	if mq == nil {
		if r.Config.SkipMosquitto {
			f("Skipped (`-skip-mosquitto`).\n\n")
		} else {
			f("Not measured (see problems).\n\n")
		}
		return
	}
	f("mosquitto %s on %s with a generated config (`listener`, `allow_anonymous true`, `persistence false`, no password file; login with a gateway's username and password: %s). "+
		"It acknowledges QoS 1 on receipt and, with no subscribers, discards the messages: no authentication against a registry, no payload validation, no Kafka, no storage. "+
		"Same fleet, QoS, duration and simulator settings as above.\n\n", mq.Version, mq.Addr, mq.LoginCheck)
	st := mq.Stats
	secs := st.Elapsed.Seconds()
	f("| measure | mosquitto | Polis | Polis / mosquitto |\n|---|---|---|---|\n")
	var ps float64
	var pp float64
	if r.Polis != nil && r.Polis.Stats.Elapsed > 0 {
		ps = float64(r.Polis.Stats.Sent) / r.Polis.Stats.Elapsed.Seconds()
		pp = float64(r.Polis.Stats.Points) / r.Polis.Stats.Elapsed.Seconds()
	}
	mqMsgs := float64(st.Sent) / max(secs, 1e-9)
	mqPoints := float64(st.Points) / max(secs, 1e-9)
	f("| messages published / acknowledged / errors | %s / %s / %s | | |\n", num(st.Sent), num(st.Acked), num(st.Errors))
	f("| **messages/s** | **%s** | **%s** | **%s** |\n", rate(float64(st.Sent), secs), rate(ps, 1), ratio(ps, mqMsgs))
	f("| **points/s** | **%s** | **%s** | **%s** |\n", rate(float64(st.Points), secs), rate(pp, 1), ratio(pp, mqPoints))
	if mq.CPU.Wall > 0 {
		f("| CPU while publishing | %s | | |\n", cpuLine(mq.CPU, "this process (the simulator)", "mosquitto", r.Machine.CPUs))
	}
	f("\n")
	if mq.CPU.Wall > 0 && mq.CPU.Machine >= 0.85*float64(r.Machine.CPUs) {
		f("The machine's %d CPUs were busy (%.2f cores) and the simulator took %.2f of them: mosquitto's figure is bounded by the simulator sharing the machine, a lower bound of what mosquitto alone can take.\n\n",
			r.Machine.CPUs, mq.CPU.Machine, mq.CPU.Self)
	}
	if mq.LogTail != "" {
		f("Last lines of mosquitto's log:\n\n```\n%s\n```\n\n", mq.LogTail)
	}
}

func (r *Results) bulkSection(b *strings.Builder) {
	f := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	f("### 5. Baseline: bulk insert, storage writer vs clickhouse-client\n\n")
	bk := r.Bulk
	if bk == nil {
		if r.Config.SkipBulk {
			f("Skipped (`-skip-bulk`).\n\n")
		} else {
			f("Not measured (see problems).\n\n")
		}
		return
	}
	f("The same %s rows (%s records of %d points: one device, ten metrics, one timestamp each) inserted two ways into fresh databases made by `schema.Apply` "+
		"(so the 1-minute and 1-hour rollup materialised views run in both): `clickhouse-client --query \"INSERT INTO %s.telemetry (%s) FORMAT TabSeparated\" < file` (%.1f MB of TSV; "+
		"the time is the client's whole run), and the storage writer (`storage.NewWriter`, max rows %s, max wait %s) consuming the records from an embedded Kafka filled beforehand "+
		"(%.1f MB of JSON records, produced in %s), timed from writer start until count() reached %s.\n\n",
		num(bk.Rows), num(bk.Records), pointsPerRecord, bulkClientDB, strings.Join(bulkColumns, ", "), float64(bk.TSVBytes)/1e6,
		num(r.Config.WriterMaxRows), r.Config.WriterMaxWait, float64(bk.KafkaBytes)/1e6, bk.ProduceTook.Round(time.Millisecond), num(bk.Rows))
	f("| path | rows | time | **rows/s** | clickhouse-server CPU |\n|---|---|---|---|---|\n")
	chc := func(u CPUUse) string {
		if u.Other < 0 {
			return "n/a"
		}
		return fmt.Sprintf("%.2f cores", u.Other)
	}
	cr := float64(bk.ClientRows) / max(bk.ClientTook.Seconds(), 1e-9)
	wr := float64(bk.WriterRows) / max(bk.WriterTook.Seconds(), 1e-9)
	f("| clickhouse-client, TSV | %s | %s | **%s** | %s |\n", num(bk.ClientRows), bk.ClientTook.Round(time.Millisecond), rate(cr, 1), chc(bk.ClientCPU))
	f("| storage writer, Kafka → native columnar batches | %s | %s | **%s** | %s |\n", num(bk.WriterRows), bk.WriterTook.Round(time.Millisecond), rate(wr, 1), chc(bk.WriterCPU))
	f("\nWriter / clickhouse-client: **%s**. While the writer ran, this process (Kafka consumer, JSON decoding, columns, clickhouse-go) used %.2f cores", ratio(wr, cr), bk.WriterCPU.Self)
	if bk.WriterCPU.Machine >= 0 {
		f(" and the whole machine %.2f of %d", bk.WriterCPU.Machine, r.Machine.CPUs)
	}
	f(".\n\n")
}

// limits explains the Polis throughput from the platform's own metrics.
func (r *Results) limits(b *strings.Builder) {
	p := r.Polis
	mean := func(name string) (time.Duration, bool) {
		n := p.Metrics[name+"_count"]
		if n <= 0 {
			return 0, false
		}
		return time.Duration(p.Metrics[name+"_sum"] / n * float64(time.Second)), true
	}
	pub, ok1 := mean("polis_broker_publish_seconds")
	prod, ok2 := mean("polis_ingest_produce_seconds")
	if !ok1 || !ok2 || pub <= 0 {
		return
	}
	conns := float64(r.Fleet.Gateways)
	fmt.Fprintf(b, "What limits it: the broker acknowledges a QoS 1 publish only once Kafka has the record, and it handles a connection's publishes one at a time "+
		"(mochi-mqtt calls the OnPublish hook from the connection's read loop, which waits for the Kafka acknowledgement). "+
		"Mean time from a publish's arrival to its Kafka acknowledgement (`polis_broker_publish_seconds`): %s, of which the produce (`polis_ingest_produce_seconds`) %s. "+
		"With %s connections, each holding at most one publish in the broker, that allows at most %s ÷ %s ≈ %s messages/s; measured %s. ",
		msPrec(pub), msPrec(prod), num(r.Fleet.Gateways), num(r.Fleet.Gateways), msPrec(pub), rate(conns, pub.Seconds()),
		rate(float64(p.Stats.Sent), p.Stats.Elapsed.Seconds()))
	shares := map[string]float64{}
	if r.Profile != nil {
		shares = parseTags(r.Profile.Tags)
	}
	u := p.CPU
	if plat, ok := shares["platform"]; ok && u.Self > 0 {
		pc := u.Self * plat
		fmt.Fprintf(b, "Of this process's %.2f cores, the platform took ≈ %.2f and the simulator ≈ %.2f (profile labels, §3): ≈ %s messages/s (%s points/s) per core of platform CPU, ClickHouse not counted. ",
			u.Self, pc, u.Self*shares["simulator"], rate(float64(p.Stats.Sent)/p.Stats.Elapsed.Seconds(), pc), rate(float64(p.Stats.Points)/p.Stats.Elapsed.Seconds(), pc))
	}
	measured := float64(p.Stats.Sent) / p.Stats.Elapsed.Seconds()
	bound := conns / pub.Seconds()
	switch {
	case u.Machine < 0:
		fmt.Fprintf(b, "\n\n")
	case u.Machine >= 0.85*float64(r.Machine.CPUs) && measured < 0.7*bound:
		fmt.Fprintf(b, "The machine's CPUs were saturated (%.2f of %d cores busy) and the rate stayed well under the round-trip bound: **CPU is the limit on this machine**, "+
			"shared by the platform, the simulator and ClickHouse (see the profile for where the platform's share goes).\n\n", u.Machine, r.Machine.CPUs)
	case u.Machine >= 0.85*float64(r.Machine.CPUs):
		fmt.Fprintf(b, "The machine's CPUs were saturated (%.2f of %d cores busy) and the rate is close to the round-trip bound: both limit it.\n\n", u.Machine, r.Machine.CPUs)
	default:
		fmt.Fprintf(b, "The machine was not CPU-bound (%.2f of %d cores busy): the per-connection Kafka round trip, not CPU, sets the rate; "+
			"more connections, a producer linger that batches more records per request (`-kafka-linger`), or acknowledging before Kafka would raise it.\n\n", u.Machine, r.Machine.CPUs)
	}
}

// parseTags reads `go tool pprof -tags` output for the component label:
// "  5.01s (62.94%): platform" lines, as fractions of all samples.
func parseTags(out string) map[string]float64 {
	m := map[string]float64{}
	in := false
	for _, l := range strings.Split(out, "\n") {
		t := strings.TrimSpace(l)
		if strings.HasPrefix(t, "component:") {
			in = true
			continue
		}
		if !in {
			continue
		}
		if strings.HasSuffix(t, ":") || strings.Contains(t, ": Total") {
			break
		}
		lo, hi := strings.IndexByte(t, '('), strings.Index(t, "%):")
		if lo < 0 || hi < lo {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(t[lo+1:hi]), 64)
		if err != nil {
			continue
		}
		m[strings.TrimSpace(t[hi+3:])] = v / 100
	}
	return m
}

// cpuLine describes a CPUUse.
func cpuLine(u CPUUse, self, other string, cpus int) string {
	s := fmt.Sprintf("%s %.2f cores", self, u.Self)
	if u.Other >= 0 {
		s += fmt.Sprintf(", %s %.2f cores", other, u.Other)
	}
	if u.Machine >= 0 {
		s += fmt.Sprintf(", whole machine %.2f of %d cores", u.Machine, cpus)
		if rest := u.Machine - u.Self - max(u.Other, 0); rest >= 0.05 {
			s += fmt.Sprintf(" (other processes %.2f)", rest)
		}
	}
	return s
}

func msPrec(d time.Duration) string {
	return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
}

// labelled lists the labelled series of one metric as "label value, ...".
func labelled(ms map[string]float64, prefix string) string {
	var parts []string
	for k, v := range ms {
		if strings.HasPrefix(k, prefix) && v > 0 {
			parts = append(parts, fmt.Sprintf("`%s` %s", strings.TrimPrefix(k, prefix[:len(prefix)-1]), num(uint64(v))))
		}
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// num formats an integer with thousands separators.
func num[T ~int | ~int64 | ~uint64](n T) string {
	s := strconv.FormatInt(int64(n), 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var out []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	if neg {
		return "-" + string(out)
	}
	return string(out)
}

func rate(n, secs float64) string {
	if secs <= 0 {
		return "n/a"
	}
	return num(int64(n/secs + 0.5))
}

func ratio(a, b float64) string {
	if b <= 0 || a <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f×", a/b)
}

func pct(a, b uint64) float64 {
	if b == 0 {
		return 0
	}
	return 100 * float64(a) / float64(b)
}

func ms(d time.Duration) string {
	if d <= 0 {
		return "–"
	}
	return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
}

func rulesLabel(dir string) string {
	if dir == "" {
		return "none"
	}
	return "`" + dir + "`"
}
