package memory

import (
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/kafkarpc/kafkarpc/internal/disklog"
	"github.com/kafkarpc/kafkarpc/transport"
)

// ErrStorage marks a failed write or fsync of a durable broker's data dir
// (a full disk, a quota, an I/O error): the produce or commit that got it
// was not acknowledged. kafka-rest answers it with 507 Insufficient Storage.
var ErrStorage = disklog.ErrStorage

// FsyncPolicy says when a durable broker (NewDurable) fsyncs, and so what
// a machine crash can lose. Under every policy a produce is acknowledged
// only once its records are written to the operating system, so a crash of
// the process alone (SIGKILL, a panic) loses nothing acknowledged. The
// zero value is FsyncAlways.
type FsyncPolicy struct {
	mode     disklog.SyncPolicy
	interval time.Duration
}

// FsyncAlways fsyncs before acknowledging each produce and commit, with
// group commit (concurrent producers share one fsync): a machine crash
// loses nothing acknowledged. It is the default.
func FsyncAlways() FsyncPolicy { return FsyncPolicy{mode: disklog.SyncAlways} }

// FsyncEvery fsyncs every d in a background goroutine: a machine crash
// loses at most the acknowledged writes of the last d. d must be positive.
func FsyncEvery(d time.Duration) FsyncPolicy {
	return FsyncPolicy{mode: disklog.SyncInterval, interval: d}
}

// FsyncNever never fsyncs and leaves write-back to the operating system: a
// machine crash loses what the kernel had not yet written (on Linux, by
// default, up to about 30 s of writes).
func FsyncNever() FsyncPolicy { return FsyncPolicy{mode: disklog.SyncNever} }

// ParseFsyncPolicy parses "always", "never" or "interval=DUR" (DUR as in
// time.ParseDuration, positive), kafka-rest's --fsync values.
func ParseFsyncPolicy(s string) (FsyncPolicy, error) {
	switch {
	case s == "always":
		return FsyncAlways(), nil
	case s == "never":
		return FsyncNever(), nil
	case strings.HasPrefix(s, "interval="):
		d, err := time.ParseDuration(strings.TrimPrefix(s, "interval="))
		if err != nil || d <= 0 {
			return FsyncPolicy{}, fmt.Errorf("fsync policy %q: the interval must be a positive duration such as interval=100ms: %w", s, transport.ErrInvalid)
		}
		return FsyncEvery(d), nil
	}
	return FsyncPolicy{}, fmt.Errorf("fsync policy %q: want always, never or interval=DUR: %w", s, transport.ErrInvalid)
}

// String returns the policy as ParseFsyncPolicy reads it.
func (p FsyncPolicy) String() string {
	if p.mode == disklog.SyncInterval {
		return "interval=" + p.interval.String()
	}
	if p.mode == 0 {
		return "always"
	}
	return p.mode.String()
}

// durableConfig holds the settings that only NewDurable uses.
type durableConfig struct {
	set          bool // some durable option was given
	fsync        FsyncPolicy
	segmentBytes int64
	logger       *slog.Logger
}

// WithFsync sets a durable broker's fsync policy (see FsyncPolicy). The
// default is FsyncAlways(). New (a broker in memory only) fails when given
// it.
func WithFsync(p FsyncPolicy) Option {
	return funcOption(func(c *config) error {
		if p.mode == disklog.SyncInterval && p.interval <= 0 {
			return errOption(fmt.Sprintf("WithFsync(%v)", p), "the interval must be positive")
		}
		c.durable.set, c.durable.fsync = true, p
		return nil
	})
}

// WithSegmentBytes sets the size at which a durable broker closes a
// partition's segment file and begins a new one; retention deletes whole
// segments, so a partition's files hold up to its retention plus one
// segment. The default is 16 MiB; a value <= 0 makes NewDurable fail, and
// New fails when given it.
func WithSegmentBytes(n int64) Option {
	return funcOption(func(c *config) error {
		if n <= 0 {
			return errOption(fmt.Sprintf("WithSegmentBytes(%d)", n), "the size must be positive")
		}
		c.durable.set, c.durable.segmentBytes = true, n
		return nil
	})
}

// WithLogger sets where a durable broker reports what recovery found (a
// torn tail cut, a damaged segment set aside) and background fsync
// errors. The default is slog.Default(). New fails when given it.
func WithLogger(l *slog.Logger) Option {
	return funcOption(func(c *config) error {
		c.durable.set, c.durable.logger = true, l
		return nil
	})
}

// NewDurable returns a broker that keeps its records, topics and consumer
// groups' committed offsets in the data directory dir (created if
// missing) as well as in memory, and recovers them when started again on
// the same dir: offsets continue where they stopped, groups resume from
// their committed offsets, topics keep their partition counts.
//
// Options are New's, plus WithFsync (default FsyncAlways),
// WithSegmentBytes and WithLogger. Retention (WithRetention,
// WithRetentionAge) applies to the files too: segments whose records have
// all been dropped are deleted. A Produce returns only once its records
// are written to the operating system (and fsynced, per the policy); if
// writing fails, it fails with an error wrapping ErrStorage and the
// records of the failing partition are neither stored nor visible (with
// records for several partitions, those of partitions written before the
// failure are kept). Commits are written the same way before they return.
//
// Recovery reads every partition's files: a torn tail (a write cut short
// by a crash) is cut at the last valid record, a damaged segment in the
// middle is set aside with the records before it (the log stays a dense
// run of offsets), and both are reported to the logger; the broker
// starts with the rest. A directory in use by another running process is
// refused (flock). Close fsyncs and releases the directory.
//
// Each partition keeps its active segment file open once appended to, up
// to the partition limit of WithMaxTopics: a data dir holding more
// partitions (written under a higher limit) closes the file of the
// partition least recently appended to when it opens one more, so the
// broker's open files stay within the limit.
//
// Reads are served from memory, so the records retained must fit in
// memory, as with New; start-up time grows with the data retained.
func NewDurable(dir string, opts ...Option) (*Broker, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	dc := cfg.durable
	mode := dc.fsync.mode
	if mode == 0 {
		mode = disklog.SyncAlways
	}
	d, err := disklog.Open(dir, disklog.Options{
		Sync:         mode,
		Interval:     dc.fsync.interval,
		SegmentBytes: dc.segmentBytes,
		Logger:       dc.logger,
		// A data dir may hold more partitions than the limit (written
		// under a higher one): their files stay within it all the same.
		MaxOpen: cfg.maxTotalParts,
	})
	if err != nil {
		return nil, fmt.Errorf("memory: %w", err)
	}
	b := newBrokerWith(cfg)
	b.disk = d
	if err := b.restore(); err != nil {
		b.Close()
		return nil, err
	}
	if err := b.createConfigTopics(); err != nil {
		b.Close()
		return nil, err
	}
	return b, nil
}

// restore loads the data dir's topics, records and committed offsets.
func (b *Broker) restore() error {
	now := b.now()
	// Partitions are read concurrently, one worker per CPU.
	var (
		topics = b.disk.Topics()
		work   = make(chan *partition)
		errs   = make(chan error, runtime.GOMAXPROCS(0))
		wg     sync.WaitGroup
	)
	for range cap(errs) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var first error
			for p := range work {
				if first == nil {
					first = b.attachLog(p, now)
				}
			}
			errs <- first
		}()
	}
	for _, ts := range topics {
		if err := validTopicName(ts.Name); err != nil || ts.Partitions <= 0 || ts.Partitions > maxPartitions {
			// Never written by a broker: a damaged or edited meta.log. Its
			// name would be joined into paths (../ escapes the data dir)
			// and its count allocated.
			b.cfg.durable.log().Error("memory: the data dir's metadata names an invalid topic; it is skipped",
				"topic", ts.Name, "partitions", ts.Partitions, "reason", err)
			continue
		}
		t := newTopic(ts.Name, ts.Partitions)
		for _, p := range t.parts {
			work <- p
		}
		b.topics.Store(t.name, t)
		b.nTopics.Add(1)
		b.nParts.Add(int64(len(t.parts)))
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return err
		}
	}
	for name, cs := range b.disk.Commits() {
		g := b.newGroup(name)
		g.emptySince = now // the offsets retention counts from the restart
		for _, c := range cs {
			t := b.lookup(c.Topic)
			if t == nil || c.Partition < 0 || int(c.Partition) >= len(t.parts) {
				continue
			}
			g.part(t.parts[c.Partition]).committed = c.Offset
		}
		b.groups[name] = g
	}
	return nil
}

// attachLog gives p its log on disk, replaying what it holds into memory.
func (b *Broker) attachLog(p *partition, now time.Time) error {
	l, err := b.disk.Log(p.topic.name, p.index, func(batch disklog.Batch) error {
		for i := range batch.Records {
			batch.Records[i].Topic, batch.Records[i].Partition = p.topic.name, p.index
		}
		p.restore(batch, &b.cfg, now)
		return nil
	})
	if err != nil {
		return fmt.Errorf("memory: %w", err)
	}
	p.mu.Lock()
	if p.count == 0 {
		p.base = l.Next()
	}
	p.end.Store(l.Next())
	l.DropBefore(p.base)
	p.log, p.stopped = l, &b.closed
	p.mu.Unlock()
	return nil
}

// persistTopics records new topics in the data dir, and gives their
// partitions their logs. Called with mu held, before they are published.
func (b *Broker) persistTopics(ts []*topic) error {
	if b.disk == nil {
		return nil
	}
	specs := make([]disklog.TopicSpec, len(ts))
	for i, t := range ts {
		specs[i] = disklog.TopicSpec{Name: t.name, Partitions: len(t.parts)}
	}
	if err := b.disk.AddTopics(specs); err != nil {
		if errors.Is(err, disklog.ErrClosed) {
			return errBrokerClosed
		}
		return fmt.Errorf("memory: record new topics: %w", err)
	}
	now := b.now()
	for _, t := range ts {
		for _, p := range t.parts {
			if err := b.attachLog(p, now); err != nil {
				return err
			}
		}
	}
	return nil
}

// persistCommits records the offsets at(o) >= 0 of owned partitions as
// group's committed offsets, before a commit applies them. Called with the
// group's mu held.
func (b *Broker) persistCommits(group string, owned []*owned, at func(*owned) int64) error {
	if b.disk == nil {
		return nil
	}
	var cs []disklog.Commit
	for _, o := range owned {
		if off := at(o); off >= 0 && o.gp != nil && off != o.gp.committed {
			cs = append(cs, disklog.Commit{Topic: o.p.topic.name, Partition: o.p.index, Offset: off})
		}
	}
	if err := b.disk.Commit(group, cs); err != nil {
		if errors.Is(err, disklog.ErrClosed) {
			return errBrokerClosed // Close ran meanwhile
		}
		return fmt.Errorf("memory: commit for group %q: %w", group, err)
	}
	return nil
}

// persistGroupDeleted records that a group's committed offsets are gone.
func (b *Broker) persistGroupDeleted(name string) {
	if b.disk == nil {
		return
	}
	if err := b.disk.DeleteGroup(name); err != nil && !errors.Is(err, disklog.ErrClosed) {
		// The group comes back at a restart, to expire again.
		b.cfg.durable.log().Warn("memory: could not record a deleted group", "group", name, "err", err)
	}
}

func (d durableConfig) log() *slog.Logger {
	if d.logger != nil {
		return d.logger
	}
	return slog.Default()
}

// closeDisk stops appends (every partition's lock is taken once after
// closed is set, so no append is writing) and closes the data dir.
func (b *Broker) closeDisk() {
	if b.disk == nil {
		return
	}
	b.topics.Range(func(_, v any) bool {
		for _, p := range v.(*topic).parts {
			p.mu.Lock()
			//lint:ignore SA2001 an empty critical section is the barrier
			p.mu.Unlock()
		}
		return true
	})
	if err := b.disk.Close(); err != nil {
		b.cfg.durable.log().Error("memory: closing the data dir", "err", err)
	}
}
