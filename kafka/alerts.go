package kafka

// The topics of the alert state (rules.Service). Both are compacted and
// kept forever (retention.ms = retention.bytes = -1): the latest record per
// key is the store itself.
const (
	// TopicAlertState holds the whole state of every alert the rules keep
	// (open, acknowledged, assigned, recently resolved), key =
	// SITE/FINGERPRINT, partitioned by its site part like TopicState, so
	// partition p holds the alerts of the sites of the twin's partition p;
	// a nil value deletes the alert. It has the partition count of the
	// site-keyed topics.
	TopicAlertState = "polis.alertstate.v1"
	// TopicSilences holds the silences, key = silence id (a nil value
	// removes one), one partition: every instance replays and follows it.
	TopicSilences = "polis.silences.v1"
)
