package disklog

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
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

// roll begins a new segment at Next (or reopens the active one after
// recovery, when it has room).
func (l *Log) roll() error {
	if !l.created {
		if err := os.MkdirAll(l.path, 0o755); err != nil {
			return fmt.Errorf("%w: %v", ErrStorage, err)
		}
		l.created = true
		l.d.syncDirOf(filepath.Dir(l.path))
	}
	nosync := l.d.opts.Sync == SyncNever
	if l.file.f == nil && len(l.segs) > 0 {
		last := l.segs[len(l.segs)-1]
		if last.size < l.d.opts.SegmentBytes {
			f, err := os.OpenFile(last.path, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				return fmt.Errorf("%w: %v", ErrStorage, err)
			}
			return l.file.swap(f, last.size, nosync)
		}
	}
	if n := len(l.segs); n > 0 && l.segs[n-1].base == l.next {
		// The active segment is empty: keep it (never two files at one base).
		if l.file.f != nil {
			return nil
		}
	}
	path := filepath.Join(l.path, segmentName(l.next))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrStorage, err)
	}
	if err := l.file.swap(f, 0, nosync); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	l.segs = append(l.segs, segment{base: l.next, path: path})
	l.d.syncDirOf(l.path)
	return nil
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
	var pending []Batch
	start := 0 // the first segment kept
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
			// A torn tail: cut the file at the last valid batch.
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
	for _, b := range pending {
		if err := fn(b); err != nil {
			return err
		}
	}
	return nil
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

// readSegment reads the batches of the segment at path, which begins at
// offset base. It returns the batches read, the length of the valid
// prefix, the offset after it, and why reading stopped early (nil at the
// end of the file).
func readSegment(path string, base int64) (batches []Batch, valid int64, next int64, err error) {
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
		b, err := decodeBatch(payload)
		if err == nil && b.Base != next {
			err = fmt.Errorf("batch has base offset %d, expected %d", b.Base, next)
		}
		if err != nil {
			return batches, valid, next, fmt.Errorf("at byte %d: %w", valid, err)
		}
		batches = append(batches, b)
		valid += int64(n)
		next += int64(len(b.Records))
	}
	return batches, valid, next, nil
}
