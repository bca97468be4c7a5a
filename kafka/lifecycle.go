package kafka

// TopicLifecycle carries every asset lifecycle change (key = site/asset,
// partitioned by its site part, value = the lifecycle event as JSON), kept
// forever (no retention, not compacted): it is the lifecycle's history, the
// log every instance folds into its tracker, and what fills ClickHouse's
// lifecycle_events.
const TopicLifecycle = "polis.lifecycle.v1"

// GroupLifecycleStore is the consumer group that stores TopicLifecycle in
// ClickHouse (storage.LifecycleWriter).
const GroupLifecycleStore = "lifecycle-store"
