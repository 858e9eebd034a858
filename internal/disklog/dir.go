package disklog

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"
)

// SyncPolicy says when written data is fsynced, and so what a machine
// crash (power loss, kernel panic) can lose. A process crash (SIGKILL, a
// panic) loses nothing acknowledged under any policy: Append returns once
// the kernel has the bytes.
type SyncPolicy int

const (
	// SyncAlways fsyncs before an append or commit is acknowledged, with
	// group commit (concurrent producers share fsyncs): a machine crash
	// loses nothing acknowledged.
	SyncAlways SyncPolicy = iota + 1
	// SyncInterval fsyncs every Options.Interval in a goroutine: a machine
	// crash loses at most the last interval's acknowledged writes.
	SyncInterval
	// SyncNever leaves flushing to the operating system (Linux writes
	// dirty pages back within about 30 s by default): a machine crash
	// loses what the kernel had not written back.
	SyncNever
)

// String returns "always", "interval" or "never".
func (p SyncPolicy) String() string {
	switch p {
	case SyncAlways:
		return "always"
	case SyncInterval:
		return "interval"
	case SyncNever:
		return "never"
	}
	return "SyncPolicy(" + strconv.Itoa(int(p)) + ")"
}

// Options configure Open. The zero value is not valid: Sync must be set.
type Options struct {
	// Sync is the fsync policy (required).
	Sync SyncPolicy
	// Interval between fsyncs with SyncInterval (required, > 0, then).
	Interval time.Duration
	// SegmentBytes is the size past which a partition's active segment is
	// closed and a new one begun; retention deletes whole segments. 0
	// means DefaultSegmentBytes.
	SegmentBytes int64
	// Logger gets recovery reports (torn tails cut, damaged segments) and
	// background errors. nil means slog.Default().
	Logger *slog.Logger
	// MaxOpen caps the segment files the Dir's logs hold open (each log
	// holds its active segment once it has appended). Opening one more
	// first closes the file of the log least recently appended to, after
	// syncing it per the policy; that log reopens it at its next append.
	// 0 means no cap.
	MaxOpen int
}

// DefaultSegmentBytes is the default Options.SegmentBytes: 16 MiB, a
// quarter of the broker's default retention of 64 MiB per partition, so
// retention by bytes frees space in steps of a quarter.
const DefaultSegmentBytes = 16 << 20

// Dir is an open data directory: it holds the directory's lock until Close.
// All methods are safe for concurrent use.
type Dir struct {
	path string
	opts Options
	log  *slog.Logger
	lock *os.File
	meta meta

	mu     sync.Mutex
	logs   []*Log // every Log made, for the interval syncer and Close
	open   int    // logs holding a segment file open (MaxOpen counts them)
	closed bool
	stop   chan struct{}
	wg     sync.WaitGroup
}

// Open locks the data directory path (creating it), reads its metadata
// log and returns it. A directory locked by another process (another
// running kafka-rest) is refused with an error naming the holder's pid. A
// bad Options value is an error. Partition logs are read later, one by one,
// by Log.
func Open(path string, opts Options) (*Dir, error) {
	switch opts.Sync {
	case SyncAlways, SyncNever:
	case SyncInterval:
		if opts.Interval <= 0 {
			return nil, fmt.Errorf("disklog: fsync interval %v must be positive", opts.Interval)
		}
	default:
		return nil, fmt.Errorf("disklog: unknown fsync policy %v", opts.Sync)
	}
	if opts.SegmentBytes == 0 {
		opts.SegmentBytes = DefaultSegmentBytes
	}
	if opts.SegmentBytes < 0 {
		return nil, fmt.Errorf("disklog: segment size %d must be positive", opts.SegmentBytes)
	}
	if opts.MaxOpen < 0 {
		return nil, fmt.Errorf("disklog: the cap on open files %d must not be negative", opts.MaxOpen)
	}
	if path == "" {
		return nil, errors.New("disklog: the data dir path is empty")
	}
	d := &Dir{path: path, opts: opts, log: opts.Logger, stop: make(chan struct{})}
	if d.log == nil {
		d.log = slog.Default()
	}
	if err := os.MkdirAll(filepath.Join(path, "logs"), 0o755); err != nil {
		return nil, fmt.Errorf("disklog: data dir: %w", err)
	}
	lock, err := lockDir(path)
	if err != nil {
		return nil, err
	}
	d.lock = lock
	d.meta = meta{d: d, path: filepath.Join(path, "meta.log")}
	if err := d.meta.load(); err != nil {
		unlockDir(lock)
		return nil, fmt.Errorf("disklog: data dir %s: metadata: %w", path, err)
	}
	// meta.log, logs/ and the dir itself may be new: make their names
	// durable before anything written in them is acknowledged.
	d.syncDirOf(path)
	d.syncDirOf(filepath.Dir(filepath.Clean(path)))
	if opts.Sync == SyncInterval {
		d.wg.Add(1)
		go d.syncEvery(opts.Interval)
	}
	return d, nil
}

// Path returns the directory's path.
func (d *Dir) Path() string { return d.path }

// Topics returns the topics recorded, in creation order.
func (d *Dir) Topics() []TopicSpec {
	d.meta.mu.Lock()
	defer d.meta.mu.Unlock()
	return append([]TopicSpec(nil), d.meta.topics...)
}

// Commits returns every group's committed offsets.
func (d *Dir) Commits() map[string][]Commit {
	d.meta.mu.Lock()
	defer d.meta.mu.Unlock()
	out := make(map[string][]Commit, len(d.meta.commits))
	for g, offs := range d.meta.commits {
		for k, off := range offs {
			out[g] = append(out[g], Commit{Topic: k.topic, Partition: k.part, Offset: off})
		}
	}
	return out
}

// AddTopics records new topics (written, and synced per the policy, when
// it returns nil; an error wraps ErrStorage).
func (d *Dir) AddTopics(ts []TopicSpec) error { return d.meta.addTopics(ts) }

// Commit records group's committed offsets, as AddTopics records topics.
func (d *Dir) Commit(group string, cs []Commit) error {
	if len(cs) == 0 {
		return nil
	}
	return d.meta.commit(group, cs)
}

// DeleteGroup records that group and its committed offsets are gone.
func (d *Dir) DeleteGroup(group string) error { return d.meta.deleteGroup(group) }

// Log opens the log of a topic's partition, reading what it holds on disk:
// fn gets every batch in offset order (see the package doc for what
// recovery cuts or sets aside), and an error from fn stops Log with it.
func (d *Dir) Log(topic string, partition int32, fn func(Batch) error) (*Log, error) {
	l := &Log{d: d, path: filepath.Join(d.path, "logs", topic, strconv.Itoa(int(partition)))}
	if err := l.recover(fn); err != nil {
		return nil, fmt.Errorf("disklog: recover %s: %w", l.path, err)
	}
	d.mu.Lock()
	d.logs = append(d.logs, l)
	d.mu.Unlock()
	return l, nil
}

// opening counts a segment file that l, which holds none, is about to
// open, first making room for it at MaxOpen: it closes the file of the
// log least recently appended to among those not appending now, or waits
// until one is done (an append holds its log only while it writes).
// Called with l.mu held; if the open fails, unopened takes the count back.
// An Append must not run during or after Close; one that does anyway
// gets ErrClosed here rather than waiting for room for good.
func (d *Dir) opening(l *Log) error {
	for wait := time.Microsecond; ; wait = min(2*wait, time.Millisecond) {
		d.mu.Lock()
		if d.closed {
			d.mu.Unlock()
			return ErrClosed
		}
		if d.opts.MaxOpen <= 0 || d.open < d.opts.MaxOpen || d.closeLRULocked(l) {
			d.open++
			d.mu.Unlock()
			return nil
		}
		d.mu.Unlock()
		time.Sleep(wait)
	}
}

// unopened takes back the count of opening, whose open failed.
func (d *Dir) unopened() {
	d.mu.Lock()
	d.open--
	d.mu.Unlock()
}

// closeLRULocked closes the segment file of the open log other than self
// least recently appended to whose lock is free, and reports whether it
// closed one. Called with d.mu held.
func (d *Dir) closeLRULocked(self *Log) bool {
	type candidate struct {
		l    *Log
		used int64
	}
	var open []candidate
	for _, v := range d.logs {
		if v != self && v.isOpen.Load() {
			open = append(open, candidate{v, v.used.Load()})
		}
	}
	slices.SortFunc(open, func(a, b candidate) int { return cmp.Compare(a.used, b.used) })
	for _, c := range open {
		v := c.l
		if !v.mu.TryLock() {
			continue // appending now
		}
		closed := v.closeFile()
		v.mu.Unlock()
		if closed {
			d.open--
			return true
		}
	}
	return false
}

// nosync says the policy is SyncNever: no file is fsynced.
func (d *Dir) nosync() bool { return d.opts.Sync == SyncNever }

// syncDirOf fsyncs the directory path so that a file created or renamed
// in it survives a machine crash (not with SyncNever). Errors are logged.
func (d *Dir) syncDirOf(path string) {
	if d.nosync() {
		return
	}
	if err := fsyncDir(path); err != nil {
		d.log.Warn("disklog: fsync of a directory failed", "path", path, "err", err)
	}
}

// fsyncDir fsyncs the directory path (a variable for tests to watch).
var fsyncDir = func(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	err = f.Sync()
	f.Close()
	return err
}

// syncEvery is SyncInterval's goroutine.
func (d *Dir) syncEvery(every time.Duration) {
	defer d.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-d.stop:
			return
		case <-t.C:
		}
		d.syncAll()
	}
}

// syncAll fsyncs every file with unsynced bytes.
func (d *Dir) syncAll() {
	d.mu.Lock()
	logs := append([]*Log(nil), d.logs...)
	d.mu.Unlock()
	// Concurrently, a few at a time: the filesystem's journal merges
	// concurrent fsyncs, so a round costs about one fsync's latency.
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for _, l := range logs {
		if !l.file.dirty() {
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := l.file.Sync(l.file.written.Load()); err != nil {
				d.log.Error("disklog: fsync failed", "partition_dir", l.path, "err", err)
			}
		}()
	}
	wg.Wait()
	if d.meta.file.dirty() {
		if err := d.meta.file.Sync(d.meta.file.written.Load()); err != nil {
			d.log.Error("disklog: fsync failed", "path", d.meta.path, "err", err)
		}
	}
}

// Close stops the interval syncer, fsyncs everything (not with
// SyncNever), closes the files and releases the lock. No Append may run
// concurrently or after. It is idempotent.
func (d *Dir) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	logs := d.logs
	d.logs = nil
	d.mu.Unlock()
	close(d.stop)
	d.wg.Wait()
	nosync := d.nosync()
	var errs []error
	for _, l := range logs {
		if err := l.file.close(nosync); err != nil {
			errs = append(errs, err)
		}
	}
	// Under the metadata's lock: a commit or topic racing Close gets
	// ErrClosed, not a write to a closed (or nil) file.
	d.meta.mu.Lock()
	if err := d.meta.file.close(nosync); err != nil {
		errs = append(errs, err)
	}
	d.meta.closed = true
	d.meta.mu.Unlock()
	unlockDir(d.lock)
	return errors.Join(errs...)
}
