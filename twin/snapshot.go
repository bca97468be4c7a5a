package twin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/polis-platform/polis/storage/schema"
)

// saveSnapshot stores partition p's state with the offsets it reflects.
// Called with s.mu held.
func (s *Service) saveSnapshot(ctx context.Context, p int32, o *owned) error {
	var buf bytes.Buffer
	if err := o.p.Snapshot(&buf); err != nil {
		return fmt.Errorf("cannot encode twin partition %d: %w", p, err)
	}
	offs, err := json.Marshal(o.next)
	if err != nil {
		return fmt.Errorf("cannot encode offsets of partition %d: %w", p, err)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	b, err := s.o.Conn.PrepareBatch(ctx, "INSERT INTO "+s.o.Database+"."+schema.TableSnapshots+" (partition, taken_ms, offsets, data)")
	if err != nil {
		return fmt.Errorf("cannot prepare twin snapshot insert: %w", err)
	}
	if err := b.Append(uint32(p), uint64(s.o.now().UnixMilli()), string(offs), buf.String()); err != nil {
		_ = b.Abort()
		return fmt.Errorf("cannot append twin snapshot: %w", err)
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("cannot insert twin snapshot of partition %d: %w", p, err)
	}
	return nil
}

// loadSnapshot returns the newest snapshot of partition p, or nil data.
func (s *Service) loadSnapshot(ctx context.Context, p int32) (map[string]int64, io.Reader, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	rows, err := s.o.Conn.Query(ctx, "SELECT offsets, data FROM "+s.o.Database+"."+schema.TableSnapshots+
		" WHERE partition = ? ORDER BY taken_ms DESC LIMIT 1", uint32(p))
	if err != nil {
		return nil, nil, fmt.Errorf("cannot read twin snapshot of partition %d: %w", p, err)
	}
	defer rows.Close()
	if !rows.Next() {
		return nil, nil, rows.Err()
	}
	var offs, data string
	if err := rows.Scan(&offs, &data); err != nil {
		return nil, nil, fmt.Errorf("cannot read twin snapshot of partition %d: %w", p, err)
	}
	next := map[string]int64{}
	if err := json.Unmarshal([]byte(offs), &next); err != nil {
		return nil, nil, fmt.Errorf("cannot decode offsets of twin snapshot %d: %w", p, err)
	}
	return next, bytes.NewReader([]byte(data)), nil
}
