#!/usr/bin/env bash
# Measures the inputs of docs/capacity.md on this machine: the platform's
# CPU per message with the simulator in a process of its own, and the bytes
# a message takes in Kafka (the embedded cluster's log, as produced:
# snappy batches) and a point in ClickHouse (after merges), with the demo
# fleet's device models. Needs bin/polis (make build; or POLIS_BIN=path) and clickhouse-server.
#
#   deploy/capacity/measure.sh [MESSAGES] [RATE]     # default 200000 at 2000/s
set -euo pipefail
cd "$(dirname "$0")/../.."
msgs=${1:-200000}
rate=${2:-2000}
dir=$(mktemp -d /tmp/polis-capacity-XXXXXX)
bin=${POLIS_BIN:-bin/polis}
[ -x "$bin" ] || { echo "build bin/polis first (make build)" >&2; exit 1; }
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
chp=$(port); chh=$(port); mq=$(port); api=$(port); kp=$(port)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
cpu() { awk '{print $14+$15}' "/proc/$1/stat"; }   # user+system, clock ticks
tck=$(getconf CLK_TCK)
q() { clickhouse-client --port "$chp" --query "$1"; }

$bin clickhouse --dir "$dir/ch" --tcp-port "$chp" --http-port "$chh" >"$dir/ch.log" 2>&1 & pids+=($!)
for _ in $(seq 60); do q 'SELECT 1' >/dev/null 2>&1 && break; sleep 1; done
chpid=$(pgrep -n -f "clickhouse-server --config-file=$dir/ch") 
$bin registry generate --sites 500 --coworking 20 --out "$dir/registry.json" --credentials "$dir/credentials.csv" >/dev/null
$bin serve --data-dir "$dir/var" --registry "$dir/registry.json" --clickhouse "127.0.0.1:$chp" \
  --mqtt-addr "127.0.0.1:$mq" --http-addr "127.0.0.1:$api" --kafka-addr "127.0.0.1:$kp" >"$dir/serve.log" 2>&1 & pids+=($!)
ppid=$!
for _ in $(seq 120); do curl -sf "http://127.0.0.1:$api/readyz" >/dev/null && break; sleep 1; done
p0=$(cpu $ppid); c0=$(cpu $chpid); t0=$(date +%s.%N)
$bin simulate --broker "tcp://127.0.0.1:$mq" --registry "$dir/registry.json" --credentials "$dir/credentials.csv" \
  --rate "$rate" --messages "$msgs" >"$dir/simulate.log" 2>&1
# Until the writer has stored what was acknowledged.
prev=-1
for _ in $(seq 120); do n=$(q 'SELECT count() FROM polis.telemetry'); [ "$n" = "$prev" ] && break; prev=$n; sleep 2; done
t1=$(date +%s.%N); p1=$(cpu $ppid); c1=$(cpu $chpid)
points=$(q 'SELECT count() FROM polis.telemetry')
metrics=$(curl -s "http://127.0.0.1:$api/metrics")
published=$(awk '$1 ~ /^polis_ingest_messages_total/ && /result="accepted"/ {s+=$2} END {printf "%d", s}' <<<"$metrics")
telemetry=$(awk '$1 ~ /^polis_ingest_messages_total/ && /kind="telemetry"/ && /result="accepted"/ {s+=$2} END {printf "%d", s}' <<<"$metrics")
q 'OPTIMIZE TABLE polis.telemetry FINAL'
q 'OPTIMIZE TABLE polis.telemetry_1m FINAL'
q 'OPTIMIZE TABLE polis.telemetry_1h FINAL'
echo "machine: $(nproc) cores, $(uname -sr); ClickHouse $(q 'SELECT version()')"
echo "messages ingested (polis_ingest_messages_total accepted): $published, of which telemetry $telemetry; telemetry rows: $points ($(awk -v r="$points" -v m="$telemetry" 'BEGIN {printf "%.2f", r/m}') points per telemetry message)"
awk '$1 ~ /^polis_ingest_messages_total/ && /result="accepted"/ {print "  " $0}' <<<"$metrics"
awk -v a="$p0" -v b="$p1" -v c="$c0" -v d="$c1" -v s="$t0" -v e="$t1" -v t="$tck" -v m="$published" -v r="$points" 'BEGIN {
  w=e-s; printf "wall %.1f s; polis serve %.2f CPU-s (%.3f cores), clickhouse-server %.2f CPU-s (%.3f cores)\n", w, (b-a)/t, (b-a)/t/w, (d-c)/t, (d-c)/t/w
  printf "polis serve CPU per 10,000 msgs/s: %.3f cores; clickhouse-server: %.3f cores\n", (b-a)/t/m*10000, (d-c)/t/m*10000 }'
q "SELECT table, sum(rows) AS n, sum(bytes_on_disk) AS disk, round(disk / n, 1) AS bytes_per_row FROM system.parts WHERE database = 'polis' AND active GROUP BY table ORDER BY table FORMAT PrettyCompactMonoBlock"
echo "Kafka log (embedded, all topics): $(du -sb "$dir/var/kafka" | awk '{print $1}') bytes"
# kfake keeps a directory per partition, TOPIC-N.
for topic in $(find "$dir/var/kafka" -type d -name 'polis.*-[0-9]*' -printf '%f\n' | sed 's/-[0-9]*$//' | sort -u); do
  printf '  %-24s %12d bytes\n' "$topic" "$(find "$dir/var/kafka" -type d -name "$topic-[0-9]*" -exec du -sbc {} + | awk '/total$/ {s+=$1} END {print s}')"
done
awk -v b="$(find "$dir/var/kafka" -type d -name 'polis.telemetry.v1-[0-9]*' -exec du -sbc {} + | awk '/total$/ {s+=$1} END {print s}')" -v m="$telemetry" \
  'BEGIN { printf "polis.telemetry.v1 bytes per telemetry message: %.1f\n", b/m }'
tail -3 "$dir/simulate.log"
