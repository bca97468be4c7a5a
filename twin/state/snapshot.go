package state

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
)

// Snapshot format, version 1: magic, uvarint version, then per shard its
// name table and its sites with their assets (names as indexes into that
// table), an end mark, and the CRC-32 (Castagnoli) of everything before it.
// Aggregates are not written: Restore recomputes them from the assets.
const (
	snapMagic   = "POLISTWIN"
	snapVersion = 1
	snapEnd     = 0xE0F
)

// Limits on lengths read back, so that garbage cannot make Restore allocate
// gigabytes before the checksum is reached.
const (
	maxSnapString = 1 << 20
	maxSnapCount  = 1 << 24
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// ErrSnapshot marks a snapshot that cannot be read back.
var ErrSnapshot = errors.New("bad snapshot")

type snapWriter struct {
	w   *bufio.Writer
	crc uint32
	buf [binary.MaxVarintLen64]byte
	err error
}

func (w *snapWriter) write(b []byte) {
	if w.err != nil {
		return
	}
	w.crc = crc32.Update(w.crc, crcTable, b)
	_, w.err = w.w.Write(b)
}

func (w *snapWriter) uvarint(v uint64) { w.write(w.buf[:binary.PutUvarint(w.buf[:], v)]) }
func (w *snapWriter) varint(v int64)   { w.write(w.buf[:binary.PutVarint(w.buf[:], v)]) }
func (w *snapWriter) bytes(b []byte)   { w.uvarint(uint64(len(b))); w.write(b) }
func (w *snapWriter) str(s string)     { w.bytes([]byte(s)) }
func (w *snapWriter) float(f float64) {
	binary.LittleEndian.PutUint64(w.buf[:8], math.Float64bits(f))
	w.write(w.buf[:8])
}

// Snapshot writes the whole state to w. Each shard is written under its own
// lock, so a snapshot taken while records are applied is consistent per
// site, which is what recovery replays against (Kafka offsets per partition).
func (s *Store) Snapshot(w io.Writer) error {
	sw := &snapWriter{w: bufio.NewWriterSize(w, 64<<10)}
	sw.write([]byte(snapMagic))
	sw.uvarint(snapVersion)
	sw.uvarint(numShards)
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		sh.snapshot(sw)
		sh.mu.Unlock()
	}
	sw.uvarint(snapEnd)
	crc := sw.crc
	binary.LittleEndian.PutUint32(sw.buf[:4], crc)
	sw.write(sw.buf[:4])
	if sw.err == nil {
		sw.err = sw.w.Flush()
	}
	if sw.err != nil {
		return fmt.Errorf("cannot write snapshot: %w", sw.err)
	}
	return nil
}

func (sh *shard) snapshot(w *snapWriter) {
	w.uvarint(uint64(len(sh.names.list)))
	for _, n := range sh.names.list {
		w.str(n)
	}
	w.uvarint(uint64(len(sh.sites)))
	for _, st := range sh.sites {
		w.str(st.id)
		w.uvarint(uint64(len(st.order)))
		for _, a := range st.order {
			w.str(a.id)
			w.str(a.typ.name)
			w.uvarint(a.version)
			w.varint(a.statusTS)
			w.varint(a.lastSeen)
			w.varint(a.lastData)
			w.varint(a.eventTS)
			w.uvarint(uint64(a.event))
			w.uvarint(uint64(a.conn))
			if a.seen {
				w.uvarint(1)
			} else {
				w.uvarint(0)
			}
			w.uvarint(uint64(len(a.metrics)))
			for _, m := range a.metrics {
				w.uvarint(uint64(m.id))
				w.varint(m.ts)
				w.varint(m.arrival)
				w.float(m.val)
				w.uvarint(m.ver)
			}
			writeProps(w, a.reported)
			if a.desired == nil {
				w.uvarint(0)
				continue
			}
			w.uvarint(a.desired.version)
			writeProps(w, a.desired.props)
		}
	}
}

func writeProps(w *snapWriter, ps []prop) {
	w.uvarint(uint64(len(ps)))
	for _, p := range ps {
		w.uvarint(uint64(p.id))
		w.varint(p.ts)
		w.varint(p.arrival)
		w.uvarint(p.ver)
		w.bytes(p.val)
	}
}

type snapReader struct {
	r   *bufio.Reader
	crc uint32
	err error
}

func (r *snapReader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s", ErrSnapshot, fmt.Sprintf(format, args...))
	}
}

func (r *snapReader) ReadByte() (byte, error) {
	b, err := r.r.ReadByte()
	if err != nil {
		return 0, err
	}
	r.crc = crc32.Update(r.crc, crcTable, []byte{b})
	return b, nil
}

func (r *snapReader) full(b []byte) {
	if r.err != nil {
		return
	}
	if _, err := io.ReadFull(r.r, b); err != nil {
		r.fail("truncated: %v", err)
		return
	}
	r.crc = crc32.Update(r.crc, crcTable, b)
}

func (r *snapReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, err := binary.ReadUvarint(r)
	if err != nil {
		r.fail("truncated or bad varint: %v", err)
	}
	return v
}

func (r *snapReader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, err := binary.ReadVarint(r)
	if err != nil {
		r.fail("truncated or bad varint: %v", err)
	}
	return v
}

func (r *snapReader) count(max uint64) int {
	n := r.uvarint()
	if n > max {
		r.fail("count %d over %d", n, max)
		return 0
	}
	return int(n)
}

func (r *snapReader) bytes() []byte {
	n := r.count(maxSnapString)
	if r.err != nil || n == 0 {
		return nil
	}
	b := make([]byte, n)
	r.full(b)
	return b
}

func (r *snapReader) str() string { return string(r.bytes()) }

func (r *snapReader) float() float64 {
	var b [8]byte
	r.full(b[:])
	return math.Float64frombits(binary.LittleEndian.Uint64(b[:]))
}

// Restore replaces the whole state with a snapshot written by Snapshot.
// On error the store is left as it was.
func (s *Store) Restore(rd io.Reader) error {
	r := &snapReader{r: bufio.NewReaderSize(rd, 64<<10)}
	magic := make([]byte, len(snapMagic))
	r.full(magic)
	if r.err == nil && string(magic) != snapMagic {
		r.fail("not a twin state snapshot")
	}
	if v := r.uvarint(); r.err == nil && v != snapVersion {
		r.fail("version %d, want %d", v, snapVersion)
	}
	fresh := New(s.opts)
	fresh.loc = s.loc
	nShards := r.count(1 << 16)
	for i := 0; i < nShards && r.err == nil; i++ {
		fresh.restoreShard(r)
	}
	if end := r.uvarint(); r.err == nil && end != snapEnd {
		r.fail("no end mark")
	}
	want := r.crc
	var b [4]byte
	r.full(b[:])
	if r.err == nil && binary.LittleEndian.Uint32(b[:]) != want {
		r.fail("checksum mismatch")
	}
	if r.err != nil {
		return fmt.Errorf("cannot restore twin state: %w", r.err)
	}
	// Swap shard by shard; types are rebuilt from the same options.
	s.typesMu.Lock()
	s.types = fresh.types
	s.typesMu.Unlock()
	for i := range s.shards {
		sh, fr := &s.shards[i], &fresh.shards[i]
		sh.mu.Lock()
		sh.sites, sh.names = fr.sites, fr.names
		sh.applied, sh.unknown, sh.invalid, sh.dropped = 0, 0, 0, 0
		sh.mu.Unlock()
	}
	return nil
}

// restoreShard reads one written shard; its sites may land in other shards
// of s, so names are translated through the target shard's table.
func (s *Store) restoreShard(r *snapReader) {
	nNames := r.count(maxNames)
	table := make([]string, 0, min(nNames, 1024))
	for i := 0; i < nNames && r.err == nil; i++ {
		table = append(table, r.str())
	}
	name := func(sh *shard) uint16 {
		i := r.uvarint()
		if r.err != nil {
			return 0
		}
		if i >= uint64(len(table)) {
			r.fail("name index %d of %d", i, len(table))
			return 0
		}
		id, ok := sh.names.id(table[i])
		if !ok {
			r.fail("too many names")
		}
		return id
	}
	nSites := r.count(maxSnapCount)
	for i := 0; i < nSites && r.err == nil; i++ {
		siteID := r.str()
		sh := s.shardOf(siteID)
		nAssets := r.count(maxSnapCount)
		for j := 0; j < nAssets && r.err == nil; j++ {
			assetID := r.str()
			typ := r.str()
			if r.err != nil {
				return
			}
			s.AddAsset(siteID, assetID, typ)
			st := sh.sites[siteID]
			a := st.assets[assetID]
			st.agg.add(a.contrib, -1)
			a.version = r.uvarint()
			a.statusTS = r.varint()
			a.lastSeen = r.varint()
			a.lastData = r.varint()
			a.eventTS = r.varint()
			a.event = name(sh)
			a.conn = uint8(r.count(uint64(connOffline)))
			a.seen = r.count(1) == 1
			nm := r.count(maxNames)
			a.metrics = make([]metric, 0, min(nm, 64))
			for k := 0; k < nm && r.err == nil; k++ {
				m := metric{id: name(sh)}
				m.ts, m.arrival, m.val, m.ver = r.varint(), r.varint(), r.float(), r.uvarint()
				a.metrics = append(a.metrics, m)
			}
			a.reported = readProps(r, name, sh)
			a.fault = a.faulty()
			if dv := r.uvarint(); dv != 0 {
				a.desired = &desired{version: dv, props: readProps(r, name, sh)}
			}
			a.contrib = s.contribOf(a)
			st.agg.add(a.contrib, 1)
		}
	}
}

func readProps(r *snapReader, name func(*shard) uint16, sh *shard) []prop {
	n := r.count(maxNames)
	if n == 0 {
		return nil
	}
	ps := make([]prop, 0, min(n, 64))
	for k := 0; k < n && r.err == nil; k++ {
		p := prop{id: name(sh)}
		p.ts, p.arrival, p.ver = r.varint(), r.varint(), r.uvarint()
		p.val = r.bytes()
		ps = append(ps, p)
	}
	return ps
}
