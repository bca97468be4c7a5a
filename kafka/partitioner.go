package kafka

import (
	"bytes"

	"github.com/twmb/franz-go/pkg/kgo"
)

// SitePartitioner partitions by the site part of a key ("SITE" or
// "SITE/ASSET"), so that a site's telemetry, events and compacted state land
// in the same partition number and one twin shard owns all of a site. The
// hash is Kafka's own (murmur2), so other producers keyed by site agree.
func SitePartitioner() kgo.Partitioner { return sitePartitioner{kgo.StickyKeyPartitioner(nil)} }

type sitePartitioner struct{ base kgo.Partitioner }

func (p sitePartitioner) ForTopic(t string) kgo.TopicPartitioner {
	return siteTopicPartitioner{p.base.ForTopic(t)}
}

type siteTopicPartitioner struct{ base kgo.TopicPartitioner }

func (p siteTopicPartitioner) RequiresConsistency(r *kgo.Record) bool {
	return p.base.RequiresConsistency(r)
}

func (p siteTopicPartitioner) Partition(r *kgo.Record, n int) int {
	if i := bytes.IndexByte(r.Key, '/'); i > 0 {
		cut := *r
		cut.Key = r.Key[:i]
		return p.base.Partition(&cut, n)
	}
	return p.base.Partition(r, n)
}

// SiteOf returns the site part of a record key.
func SiteOf(key []byte) string {
	if i := bytes.IndexByte(key, '/'); i > 0 {
		return string(key[:i])
	}
	return string(key)
}
