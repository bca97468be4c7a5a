-- The Legacy schema as release v7 made it (before point identity): the starting point of TestUpgrade_Legacy. Frozen; do not regenerate.
-- Regenerate: go test ./storage/schema -update

-- bootstrap
CREATE DATABASE IF NOT EXISTS polis;

CREATE TABLE IF NOT EXISTS polis.schema_migrations
(
    version UInt32,
    name String,
    applied_at DateTime('UTC')
)
ENGINE = ReplacingMergeTree()
ORDER BY version;

-- migration 1: telemetry
CREATE TABLE IF NOT EXISTS polis.telemetry
(
    site String,
    asset String,
    metric String,
    ts DateTime('UTC'),
    ts_ms UInt16,
    value Float64,
    received DateTime('UTC'),
    late UInt8
)
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(ts)
ORDER BY (site, asset, metric, ts, ts_ms);

-- migration 2: telemetry_rollups
CREATE TABLE IF NOT EXISTS polis.telemetry_1m
(
    site String,
    asset String,
    metric String,
    bucket DateTime('UTC'),
    min AggregateFunction(min, Float64),
    max AggregateFunction(max, Float64),
    avg AggregateFunction(avg, Float64),
    count AggregateFunction(count),
    last AggregateFunction(argMax, Float64, UInt64)
)
ENGINE = AggregatingMergeTree()
PARTITION BY toYYYYMM(bucket)
ORDER BY (site, asset, metric, bucket);

CREATE MATERIALIZED VIEW IF NOT EXISTS polis.telemetry_1m_mv TO polis.telemetry_1m
AS SELECT
    site,
    asset,
    metric,
    toStartOfMinute(toDateTime(ts)) AS bucket,
    minState(value) AS min,
    maxState(value) AS max,
    avgState(value) AS avg,
    countState() AS count,
    argMaxState(value, toUInt64(ts) * 1000 + ts_ms) AS last
FROM polis.telemetry
GROUP BY site, asset, metric, bucket;

CREATE TABLE IF NOT EXISTS polis.telemetry_1h
(
    site String,
    asset String,
    metric String,
    bucket DateTime('UTC'),
    min AggregateFunction(min, Float64),
    max AggregateFunction(max, Float64),
    avg AggregateFunction(avg, Float64),
    count AggregateFunction(count),
    last AggregateFunction(argMax, Float64, UInt64)
)
ENGINE = AggregatingMergeTree()
PARTITION BY toYear(bucket)
ORDER BY (site, asset, metric, bucket);

CREATE MATERIALIZED VIEW IF NOT EXISTS polis.telemetry_1h_mv TO polis.telemetry_1h
AS SELECT
    site,
    asset,
    metric,
    toStartOfHour(toDateTime(ts)) AS bucket,
    minState(value) AS min,
    maxState(value) AS max,
    avgState(value) AS avg,
    countState() AS count,
    argMaxState(value, toUInt64(ts) * 1000 + ts_ms) AS last
FROM polis.telemetry
GROUP BY site, asset, metric, bucket;

-- migration 3: events
CREATE TABLE IF NOT EXISTS polis.events
(
    site String,
    asset String,
    ts DateTime('UTC'),
    ts_ms UInt16,
    type String,
    body String,
    received DateTime('UTC')
)
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(ts)
ORDER BY (site, asset, ts, ts_ms, type, cityHash64(body));

-- migration 4: deadletter
CREATE TABLE IF NOT EXISTS polis.deadletter
(
    received DateTime('UTC'),
    topic String,
    reason String,
    message String,
    site String,
    asset String,
    payload String
)
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(received)
ORDER BY (reason, site, asset, received, cityHash64(topic, payload));

-- migration 5: lifecycle_events
CREATE TABLE IF NOT EXISTS polis.lifecycle_events
(
    site String,
    asset String,
    from_state String,
    to_state String,
    ts DateTime('UTC'),
    ts_ms UInt16,
    actor String,
    cause String
)
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(ts)
ORDER BY (site, asset, ts, ts_ms, to_state);

-- migration 6: twin_snapshots
CREATE TABLE IF NOT EXISTS polis.twin_snapshots
(
    partition UInt32,
    taken_ms UInt64,
    offsets String,
    data String
)
ENGINE = ReplacingMergeTree(taken_ms)
PARTITION BY tuple()
ORDER BY (partition);

-- migration 7: alerts
CREATE TABLE IF NOT EXISTS polis.alerts
(
    ts DateTime('UTC'),
    ts_ms UInt16,
    kind String,
    delivered UInt8,
    level UInt8,
    fingerprint String,
    rule_id String,
    site String,
    asset String,
    state String,
    severity String,
    summary String,
    labels String,
    value Float64,
    active_at DateTime('UTC'),
    fired_at DateTime('UTC'),
    resolved_at DateTime('UTC'),
    acked_by String,
    assignee String,
    occurrence UInt32
)
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(ts)
ORDER BY (site, asset, rule_id, fingerprint, ts, ts_ms, kind);
