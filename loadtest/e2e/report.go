package e2e

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/polis-platform/polis/internal/platform"
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
		"Platform: `platform.Start` in this process with the embedded Kafka (kfake, %d partitions), writer max rows %s and max wait %s, producer linger %s. "+
		"The simulator runs in the same process as the platform and shares its %d CPUs; ClickHouse is a separate process on the same machine.\n\n",
		c.Sites, c.Coworking, num(r.Fleet.Sites), num(r.Fleet.Assets), num(r.Fleet.Gateways), num(r.Fleet.Gateways), c.QoS,
		c.Duration, c.Speed, platform.Defaults().KafkaPartitions, num(c.WriterMaxRows), c.WriterMaxWait, c.KafkaLinger, m.CPUs)

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
	if p.RowsAfter != p.Expected {
		eq = fmt.Sprintf("**NO — %+d rows: a bug, see problems**", int64(p.RowsAfter)-int64(p.Expected))
	}
	f("| rows == points published | %s |\n", eq)
	if v, ok := p.Metrics["polis_ingest_points_total"]; ok {
		f("| `polis_ingest_points_total` (includes %s probe points) | %s |\n", num(p.ProbeRows), num(uint64(v)))
		f("| `polis_ingest_late_points_total` | %s |\n", num(uint64(p.Metrics["polis_ingest_late_points_total"])))
		f("| `polis_ingest_deadletter_total` / `polis_broker_refused_total` | %s / %s |\n",
			num(uint64(p.Metrics["polis_ingest_deadletter_total"])), num(uint64(p.Metrics["polis_broker_refused_total"])))
	}
	if p.Wall > 0 {
		line := fmt.Sprintf("%.1f s CPU = %.2f cores", p.SelfCPU.Seconds(), p.SelfCPU.Seconds()/p.Wall.Seconds())
		f("| CPU of this process (platform + simulator), first publish → all queryable (%s) | %s |\n", p.Wall.Round(time.Millisecond), line)
		if p.CHCPUKnown {
			f("| CPU of clickhouse-server, same window | %.1f s CPU = %.2f cores |\n", p.CHCPU.Seconds(), p.CHCPU.Seconds()/p.Wall.Seconds())
		}
	}
	f("| platform shutdown (drain Kafka into ClickHouse) | %s |\n\n", p.Shutdown.Round(time.Millisecond))
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
		"a poller queries ClickHouse every %s (`SELECT value FROM %s.telemetry WHERE site=? AND asset=? AND metric=? AND value > ?`, mean query %s, %s polls, %d failed). "+
		"Queryable latency = start of the first poll that returned the row − publish time (resolution: the poll interval plus a query). "+
		"The writer flushes a batch at %s rows or %s after its first record, whichever comes first, so at this rate the batch wait dominates (vary it with `-writer-max-wait`).\n\n",
		p.Device, probeMetric, probeInterval, probePoll, r.Config.Database, p.PollTime.Round(100*time.Microsecond), num(p.Polls), p.PollErrors,
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
	if mq.CPUKnown && secs > 0 {
		f("| CPU of the simulator process while publishing | %.2f cores | | |\n", mq.SelfCPU.Seconds()/secs)
		f("| CPU of mosquitto while publishing | %.2f cores | | |\n", mq.BrokerCPU.Seconds()/secs)
	}
	f("\n")
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
	chc := func(d time.Duration, took time.Duration) string {
		if !bk.CPUKnown || took <= 0 {
			return "n/a"
		}
		return fmt.Sprintf("%.1f s (%.2f cores)", d.Seconds(), d.Seconds()/took.Seconds())
	}
	cr := float64(bk.ClientRows) / max(bk.ClientTook.Seconds(), 1e-9)
	wr := float64(bk.WriterRows) / max(bk.WriterTook.Seconds(), 1e-9)
	f("| clickhouse-client, TSV | %s | %s | **%s** | %s |\n", num(bk.ClientRows), bk.ClientTook.Round(time.Millisecond), rate(cr, 1), chc(bk.ClientCHCPU, bk.ClientTook))
	f("| storage writer, Kafka → native columnar batches | %s | %s | **%s** | %s |\n", num(bk.WriterRows), bk.WriterTook.Round(time.Millisecond), rate(wr, 1), chc(bk.WriterCHCPU, bk.WriterTook))
	f("\nWriter / clickhouse-client: **%s**. The writer process used %.1f s CPU (%.2f cores) decoding JSON records and building columns.\n\n",
		ratio(wr, cr), bk.WriterSelfCPU.Seconds(), bk.WriterSelfCPU.Seconds()/max(bk.WriterTook.Seconds(), 1e-9))
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
