package disklog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

// Entry kinds of the metadata log.
const (
	entryTopic  = 'T' // name, partitions
	entryCommit = 'C' // group, count, then (topic, partition, offset) each
	entryDelete = 'D' // group: its committed offsets are gone
)

// TopicSpec is a topic and its partition count.
type TopicSpec struct {
	Name       string
	Partitions int
}

// Commit is a consumer group's committed offset (the next offset it reads)
// for one partition.
type Commit struct {
	Topic     string
	Partition int32
	Offset    int64
}

type tp struct {
	topic string
	part  int32
}

// meta is the metadata log: an append-only file of CRC-framed entries,
// rewritten (compacted) into a snapshot of the current state when it has
// grown to four times the last snapshot.
type meta struct {
	d    *Dir
	path string

	mu        sync.Mutex
	file      syncFile
	topics    []TopicSpec
	topicIdx  map[string]int
	commits   map[string]map[tp]int64
	compactAt int64
	buf       []byte
	closed    bool // by Dir.Close: writes fail with ErrClosed
}

// ErrClosed is the error of a write to a Dir after Close.
var ErrClosed = errors.New("disklog: the data dir is closed")

const minCompact = 1 << 20

// load reads the metadata log, cutting a torn or damaged tail.
func (m *meta) load() error {
	m.topicIdx = make(map[string]int)
	m.commits = make(map[string]map[tp]int64)
	data, err := os.ReadFile(m.path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	var valid int
	for valid < len(data) {
		payload, n, err := readFrame(data[valid:])
		if err == nil {
			err = m.apply(payload)
		}
		if err != nil {
			if skip, ok := damagedEntry(data[valid:]); ok {
				// Damage in the middle (its length is intact and a valid
				// entry follows): only this entry is lost.
				m.d.log.Error("disklog: skipped a damaged entry in the middle of the metadata log (a topic or commit it held is lost)",
					"path", m.path, "at_byte", valid, "bytes", skip, "reason", err)
				valid += skip
				continue
			}
			m.d.log.Warn("disklog: cut the metadata log at a torn or damaged entry; entries after it are lost",
				"path", m.path, "kept_bytes", valid, "dropped_bytes", len(data)-valid, "reason", err)
			if terr := os.Truncate(m.path, int64(valid)); terr != nil {
				return fmt.Errorf("cut the torn tail of %s: %w", m.path, terr)
			}
			break
		}
		valid += n
	}
	f, err := os.OpenFile(m.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	m.compactAt = max(minCompact, 4*int64(valid))
	return m.file.swap(f, int64(valid), true)
}

// damagedEntry reports whether the frame at the start of b is damage in
// the middle of the log rather than a torn tail: its length fits in b and
// a valid frame follows it. It returns the frame's length.
func damagedEntry(b []byte) (int, bool) {
	if len(b) < frameHeader {
		return 0, false
	}
	size := binary.BigEndian.Uint32(b)
	if size == 0 || size > maxFrame || int(size) > len(b)-frameHeader {
		return 0, false // zeros (a tail lost by a machine crash) are a tail
	}
	n := frameHeader + int(size)
	if n >= len(b) {
		return 0, false
	}
	if next, _, err := readFrame(b[n:]); err != nil || len(next) == 0 {
		return 0, false
	}
	return n, true
}

// apply applies one entry to the state.
func (m *meta) apply(p []byte) error {
	if len(p) == 0 {
		return fmt.Errorf("%w: empty entry", errCorrupt)
	}
	d := decoder{b: p[1:]}
	switch p[0] {
	case entryTopic:
		name, n := d.str(), int(d.uvarint())
		if d.bad || n <= 0 {
			break
		}
		if _, ok := m.topicIdx[name]; !ok {
			m.topicIdx[name] = len(m.topics)
			m.topics = append(m.topics, TopicSpec{Name: name, Partitions: n})
		}
	case entryCommit:
		group := d.str()
		n := d.uvarint()
		if n > uint64(len(d.b)) {
			d.fail()
		}
		for i := uint64(0); i < n && !d.bad; i++ {
			topic, part, off := d.str(), int32(d.uvarint()), d.varint()
			if !d.bad {
				m.setCommit(group, topic, part, off)
			}
		}
	case entryDelete:
		group := d.str()
		if !d.bad {
			delete(m.commits, group)
		}
	default:
		return fmt.Errorf("%w: unknown entry kind %q", errCorrupt, p[0])
	}
	if d.bad || len(d.b) != 0 {
		return fmt.Errorf("%w: entry %q does not parse", errCorrupt, p[0])
	}
	return nil
}

func (m *meta) setCommit(group, topic string, part int32, off int64) {
	g := m.commits[group]
	if g == nil {
		g = make(map[tp]int64)
		m.commits[group] = g
	}
	g[tp{topic, part}] = off
}

// write writes the framed entries in m.buf, then applies them to the state
// and compacts when due. Called with mu held.
func (m *meta) write(apply func()) (int64, error) {
	if m.closed {
		return 0, ErrClosed
	}
	seq, err := m.file.write(m.buf)
	if err != nil {
		return 0, err
	}
	apply()
	if m.file.size >= m.compactAt {
		if err := m.compact(); err != nil {
			m.d.log.Warn("disklog: compacting the metadata log failed; it keeps growing", "path", m.path, "err", err)
			m.compactAt = m.file.size * 2
		}
	}
	return seq, nil
}

// addTopics records new topics.
func (m *meta) addTopics(ts []TopicSpec) error {
	m.mu.Lock()
	m.buf = m.buf[:0]
	for _, t := range ts {
		start := len(m.buf)
		m.buf = append(m.buf, make([]byte, frameHeader)...)
		m.buf = append(m.buf, entryTopic)
		m.buf = appendString(m.buf, t.Name)
		m.buf = appendUvarint(m.buf, uint64(t.Partitions))
		sealFrame(m.buf[:len(m.buf):len(m.buf)], start)
	}
	seq, err := m.write(func() {
		for _, t := range ts {
			if _, ok := m.topicIdx[t.Name]; !ok {
				m.topicIdx[t.Name] = len(m.topics)
				m.topics = append(m.topics, t)
			}
		}
	})
	m.mu.Unlock()
	return m.sync(seq, err)
}

// commit records a group's committed offsets.
func (m *meta) commit(group string, cs []Commit) error {
	m.mu.Lock()
	m.buf = appendCommit(m.buf[:0], group, cs)
	seq, err := m.write(func() {
		for _, c := range cs {
			m.setCommit(group, c.Topic, c.Partition, c.Offset)
		}
	})
	m.mu.Unlock()
	return m.sync(seq, err)
}

func appendCommit(dst []byte, group string, cs []Commit) []byte {
	start := len(dst)
	dst = append(dst, make([]byte, frameHeader)...)
	dst = append(dst, entryCommit)
	dst = appendString(dst, group)
	dst = appendUvarint(dst, uint64(len(cs)))
	for _, c := range cs {
		dst = appendString(dst, c.Topic)
		dst = appendUvarint(dst, uint64(c.Partition))
		dst = appendVarint(dst, c.Offset)
	}
	sealFrame(dst, start)
	return dst
}

// deleteGroup records that a group and its offsets are gone.
func (m *meta) deleteGroup(group string) error {
	m.mu.Lock()
	if _, ok := m.commits[group]; !ok {
		m.mu.Unlock()
		return nil
	}
	m.buf = append(m.buf[:0], make([]byte, frameHeader)...)
	m.buf = append(m.buf, entryDelete)
	m.buf = appendString(m.buf, group)
	sealFrame(m.buf, 0)
	seq, err := m.write(func() { delete(m.commits, group) })
	m.mu.Unlock()
	return m.sync(seq, err)
}

func (m *meta) sync(seq int64, err error) error {
	if err != nil || m.d.opts.Sync != SyncAlways {
		return err
	}
	return m.file.Sync(seq)
}

// compact writes the state to a new file and renames it over the log.
// Called with mu held.
func (m *meta) compact() error {
	var buf []byte
	for _, t := range m.topics {
		start := len(buf)
		buf = append(buf, make([]byte, frameHeader)...)
		buf = append(buf, entryTopic)
		buf = appendString(buf, t.Name)
		buf = appendUvarint(buf, uint64(t.Partitions))
		sealFrame(buf, start)
	}
	for g, offs := range m.commits {
		cs := make([]Commit, 0, len(offs))
		for k, off := range offs {
			cs = append(cs, Commit{Topic: k.topic, Partition: k.part, Offset: off})
		}
		buf = appendCommit(buf, g, cs)
	}
	tmp := m.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(buf); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	nosync := m.d.nosync()
	if !nosync {
		if err := f.Sync(); err != nil {
			f.Close()
			os.Remove(tmp)
			return err
		}
	}
	if err := os.Rename(tmp, m.path); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	m.d.syncDirOf(filepath.Dir(m.path))
	m.compactAt = max(minCompact, 4*int64(len(buf)))
	return m.file.swap(f, int64(len(buf)), nosync)
}
