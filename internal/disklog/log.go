package disklog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kafkarpc/kafkarpc/transport"
)

// segment is one file of a partition's log.
type segment struct {
	base int64  // offset of its first record
	path string // .../<base>.log
	size int64
}

func segmentName(base int64) string { return fmt.Sprintf("%020d.log", base) }

// Log is one partition's log: its segment files in offset order, the last
// one written. Make one with Dir.Log.
//
// Append must be serialised by the caller; Sync may run concurrently with
// it; everything else is for the caller holding the same lock as Append.
type Log struct {
	d    *Dir
	path string // the partition's directory, created at the first Append

	segs    []segment // in offset order; the last is active once opened
	next    int64     // the next offset to append
	created bool      // path exists
	file    syncFile  // the active segment
	buf     []byte    // reused encoding buffer

	// mu is held by Append, and by the Dir when it closes the log's file
	// to make room under Options.MaxOpen (closeFile).
	mu     sync.Mutex
	used   atomic.Int64 // time of the last Append (unix ns), for MaxOpen
	isOpen atomic.Bool  // file.f != nil
}

// Next returns the offset the next appended record gets.
func (l *Log) Next() int64 { return l.next }

// Earliest returns the base offset of the oldest segment, or Next when
// there is none.
func (l *Log) Earliest() int64 {
	if len(l.segs) == 0 {
		return l.next
	}
	return l.segs[0].base
}

// Append writes msgs, whose offsets are Next(), Next()+1, ..., as one
// batch appended at now, and returns the sequence number to pass to Sync.
// The batch is in the operating system (write(2) returned) when Append
// returns nil; on error nothing of it is in the log and the error wraps
// ErrStorage. A segment over the Dir's SegmentBytes is closed first and a
// new one begun.
func (l *Log) Append(msgs []transport.Message, now time.Time) (int64, error) {
	if len(msgs) == 0 {
		return l.file.written.Load(), nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.d.opts.MaxOpen > 0 {
		l.used.Store(now.UnixNano())
	}
	if err := l.file.broken(); err != nil {
		return 0, err
	}
	if l.file.f == nil || l.file.size >= l.d.opts.SegmentBytes {
		if err := l.roll(); err != nil {
			return 0, err
		}
	}
	l.buf = appendBatch(l.buf[:0], l.next, now.UnixMilli(), msgs)
	seq, err := l.file.write(l.buf)
	if cap(l.buf) > 4<<20 {
		l.buf = nil // do not pin a huge batch's buffer
	}
	if err != nil {
		return 0, err
	}
	l.segs[len(l.segs)-1].size = l.file.size
	l.next += int64(len(msgs))
	return seq, nil
}

// roll begins a new segment at Next, or opens the active one again (after
// recovery, or after closeFile) when it has room.
func (l *Log) roll() error {
	if !l.created {
		if err := os.MkdirAll(l.path, 0o755); err != nil {
			return fmt.Errorf("%w: %v", ErrStorage, err)
		}
		l.created = true
		// The partition's dir is named in the topic's, which may be new
		// too and is named in logs/.
		l.d.syncDirOf(filepath.Dir(l.path))
		l.d.syncDirOf(filepath.Dir(filepath.Dir(l.path)))
	}
	if l.file.f == nil {
		// One more file open: counted, and room made, before it opens.
		if err := l.d.opening(l); err != nil {
			return err
		}
		if err := l.reopen(); err != nil {
			l.d.unopened()
			return err
		}
		l.isOpen.Store(true)
		return nil
	}
	if n := len(l.segs); n > 0 && l.segs[n-1].base == l.next {
		// The active segment is empty: keep it (never two files at one base).
		return nil
	}
	return l.newSegment()
}

// reopen opens the active segment, which no file holds, when it has room,
// else begins a new one.
func (l *Log) reopen() error {
	if n := len(l.segs); n > 0 && l.segs[n-1].size < l.d.opts.SegmentBytes {
		last := l.segs[n-1]
		f, err := os.OpenFile(last.path, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrStorage, err)
		}
		return l.file.swap(f, last.size, l.d.nosync()) // no old file: cannot fail
	}
	return l.newSegment()
}

// newSegment begins a new segment at Next, the active one's file (if
// open) synced per the policy and retired.
func (l *Log) newSegment() error {
	path := filepath.Join(l.path, segmentName(l.next))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrStorage, err)
	}
	if err := l.file.swap(f, 0, l.d.nosync()); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	l.segs = append(l.segs, segment{base: l.next, path: path})
	l.d.syncDirOf(l.path)
	return nil
}

// closeFile closes the log's segment file, synced first per the policy,
// to make room under Options.MaxOpen; the next Append opens it again. It
// reports whether a file was open. Called with l.mu held.
func (l *Log) closeFile() bool {
	if l.file.f == nil {
		return false
	}
	if err := l.file.close(l.d.nosync()); err != nil {
		// The file is marked failed: the log refuses writes until a
		// restart recovers it, as after any failed fsync.
		l.d.log.Error("disklog: fsync failed", "partition_dir", l.path, "err", err)
	}
	l.isOpen.Store(false)
	return true
}

// Sync makes the batches whose Append returned seq or less durable, per
// the Dir's policy: with SyncAlways it fsyncs (group commit: concurrent
// callers share fsyncs), otherwise it returns at once (SyncInterval's
// goroutine and the OS do it later). Safe to call concurrently with Append.
func (l *Log) Sync(seq int64) error {
	if l.d.opts.Sync != SyncAlways {
		return l.file.broken()
	}
	return l.file.Sync(seq)
}

// SyncsEach reports whether Sync fsyncs (SyncAlways) rather than
// returning at once.
func (l *Log) SyncsEach() bool { return l.d.opts.Sync == SyncAlways }

// DropBefore deletes the segments all of whose records are below offset
// (retention: the broker dropped them), never the active one. It returns
// how many it deleted. An error deleting a file is logged and the segment
// kept for the next call.
func (l *Log) DropBefore(offset int64) int {
	n := 0
	for len(l.segs) > 1 && l.segs[1].base <= offset {
		if err := os.Remove(l.segs[0].path); err != nil && !errors.Is(err, os.ErrNotExist) {
			l.d.log.Warn("disklog: retention could not delete a segment", "path", l.segs[0].path, "err", err)
			break
		}
		l.segs = l.segs[1:]
		n++
	}
	return n
}

// Bytes returns the size of the log's segments.
func (l *Log) Bytes() int64 {
	var n int64
	for _, s := range l.segs {
		n += s.size
	}
	return n
}

// recover reads the partition's segments from disk, calling fn for every
// batch in offset order, cuts a torn tail and sets aside damaged segments
// (see the package doc). A partition without files starts at offset 0.
func (l *Log) recover(fn func(Batch) error) error {
	ents, err := os.ReadDir(l.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	l.created = true
	for _, e := range ents {
		name := e.Name()
		if !strings.HasSuffix(name, ".log") || e.IsDir() {
			continue
		}
		base, err := strconv.ParseInt(strings.TrimSuffix(name, ".log"), 10, 64)
		if err != nil || base < 0 {
			l.d.log.Warn("disklog: ignoring a file that is not a segment", "path", filepath.Join(l.path, name))
			continue
		}
		l.segs = append(l.segs, segment{base: base, path: filepath.Join(l.path, name)})
	}
	slices.SortFunc(l.segs, func(a, b segment) int { return int(min(max(a.base-b.base, -1), 1)) })
	if len(l.segs) == 0 {
		return nil
	}
	// Every segment is checked first (a damaged one drops the records
	// before it), and a batch is decoded only when handed to fn, so that
	// recovery holds the files' bytes, not every record decoded (14 times
	// bigger for small records) while the caller keeps only the retained.
	var pending [][]byte // payloads of the batches to hand over
	start := 0           // the first segment kept
	l.next = l.segs[0].base
	for i := range l.segs {
		s := &l.segs[i]
		if i > start && s.base != l.next {
			// A segment is missing: the records before the hole cannot
			// stay without a gap in the offsets.
			l.d.log.Error("disklog: a partition's log has a hole (a segment is missing); the partition continues after it",
				"partition_dir", l.path, "missing_offsets", fmt.Sprintf("%d..%d", l.next, s.base-1),
				"dropped_offsets", fmt.Sprintf("%d..%d", l.segs[start].base, s.base-1))
			if err := setAside(l.segs[start:i]); err != nil {
				return err
			}
			start, pending, l.next = i, nil, s.base
		}
		batches, valid, next, err := readSegment(s.path, s.base)
		s.size = valid
		switch {
		case err == nil:
		case i == len(l.segs)-1:
			// A torn tail: cut the file at the last valid batch. Bytes
			// after the cut holding a CRC-valid batch are not a torn
			// write but damage before acknowledged records: they are
			// saved beside the segment first, as damage elsewhere is set
			// aside, never erased.
			if saved, serr := saveDamagedTail(s.path, valid); serr != nil {
				return fmt.Errorf("set aside the damaged tail of %s: %w", s.path, serr)
			} else if saved != "" {
				l.d.log.Error("disklog: damage at the end of a partition's log, before intact records; the partition continues before it",
					"segment", s.path, "kept_bytes", valid, "next_offset", next, "set_aside_as", saved, "reason", err)
			}
			l.d.log.Warn("disklog: cut a torn tail (a write cut short by a crash, or damage at the end)",
				"segment", s.path, "kept_bytes", valid, "next_offset", next, "reason", err)
			if terr := os.Truncate(s.path, valid); terr != nil {
				return fmt.Errorf("cut the torn tail of %s: %w", s.path, terr)
			}
		default:
			// Damage in the middle: the records from the damage to the
			// next segment are unreadable, and those before them cannot
			// stay without a gap in the offsets.
			to := l.segs[i+1].base
			l.d.log.Error("disklog: damaged segment in the middle of a partition's log; the partition continues after it",
				"segment", s.path, "damaged_offsets", fmt.Sprintf("%d..%d", next, to-1),
				"dropped_offsets", fmt.Sprintf("%d..%d", l.segs[start].base, to-1),
				"set_aside_as", "*.log.damaged", "reason", err)
			if err := setAside(l.segs[start : i+1]); err != nil {
				return err
			}
			start, pending, l.next = i+1, nil, to
			continue
		}
		pending = append(pending, batches...)
		l.next = next
	}
	l.segs = slices.Clone(l.segs[start:])
	for i, p := range pending {
		pending[i] = nil
		b, err := decodeBatch(p)
		if err != nil { // checked above: cannot happen
			return fmt.Errorf("decode a checked batch: %w", err)
		}
		if err := fn(b); err != nil {
			return err
		}
	}
	return nil
}

// saveDamagedTail copies the bytes of the segment at path from valid on to
// <path>.at-<valid>.damaged when some CRC-valid batch frame begins in them
// (a torn write has none), and returns that name ("" when not saved).
func saveDamagedTail(path string, valid int64) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil || int64(len(data)) <= valid {
		return "", err
	}
	tail := data[valid:]
	// The bad frame itself passes its CRC (its content is wrong), or its
	// length is intact and a CRC-valid frame follows it (a flipped bit).
	// Only these two places are checked: restart stays linear in the
	// data, however long a torn tail.
	found := false
	if p, _, err := readFrame(tail); err == nil && len(p) >= batchHeader {
		found = true
	} else if len(tail) >= frameHeader {
		if size := binary.BigEndian.Uint32(tail); size > 0 && uint64(size) <= uint64(len(tail)-frameHeader) {
			next := tail[frameHeader+int(size):]
			if p, _, err := readFrame(next); err == nil && len(p) >= batchHeader {
				found = true
			}
		}
	}
	if !found {
		return "", nil
	}
	name := fmt.Sprintf("%s.at-%d.damaged", path, valid)
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644) // the same bytes again if a crash came before the cut
	if err != nil {
		return "", err
	}
	if _, err := f.Write(tail); err != nil {
		f.Close()
		return "", err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return "", err
	}
	return name, f.Close()
}

// setAside renames damaged or dropped segments to *.log.damaged, so an
// operator can inspect them and recovery skips them.
func setAside(segs []segment) error {
	for _, s := range segs {
		if err := os.Rename(s.path, s.path+".damaged"); err != nil {
			return fmt.Errorf("set aside segment %s: %w", s.path, err)
		}
	}
	return nil
}

// readSegment reads and checks the batches of the segment at path, which
// begins at offset base. It returns their payloads, the length of the valid
// prefix, the offset after it, and why reading stopped early (nil at the
// end of the file).
func readSegment(path string, base int64) (batches [][]byte, valid int64, next int64, err error) {
	data, err := os.ReadFile(path)
	next = base
	if err != nil {
		return nil, 0, next, err
	}
	for len(data) > int(valid) {
		payload, n, err := readFrame(data[valid:])
		if err != nil {
			return batches, valid, next, fmt.Errorf("at byte %d: %w", valid, err)
		}
		bbase, count, err := checkBatch(payload)
		if err == nil && bbase != next {
			err = fmt.Errorf("batch has base offset %d, expected %d", bbase, next)
		}
		if err != nil {
			return batches, valid, next, fmt.Errorf("at byte %d: %w", valid, err)
		}
		batches = append(batches, payload)
		valid += int64(n)
		next += int64(count)
	}
	return batches, valid, next, nil
}
