package disklog

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
)

// ErrStorage marks a failed write or fsync of the data dir (a full disk, a
// quota, an I/O error). Records whose Append failed were not written: the
// file was cut back to its length before them.
var ErrStorage = errors.New("storage write failed")

// syncFile is an append-only file with group commit: writers serialise
// their writes (the owner's lock), and Sync(seq) makes every byte written
// up to seq durable with as few fsyncs as concurrent callers allow.
//
// Group commit: the first caller of Sync whose bytes are not yet synced
// becomes the leader, takes syncMu, notes how much has been written and
// fsyncs; callers arriving meanwhile queue on syncMu, and when they get it
// find their bytes already synced by that fsync (if written before it
// began) or lead the next one, which covers every write made while the
// previous fsync ran. So n concurrent producers share about two fsyncs,
// not n.
type syncFile struct {
	// Guarded by the owner's lock (writes are serialised by the caller):
	// the current file, its length, and files retired by swap whose bytes
	// are synced but that a leader may still hold.
	f       *os.File
	size    int64
	retired []*os.File

	written atomic.Int64 // bytes written, over the file's life and its successors
	synced  atomic.Int64 // bytes known durable
	failed  atomic.Pointer[error]
	fsyncs  atomic.Int64 // fsyncs done by Sync, for the group commit's figures

	mu     sync.Mutex // guards f, retired for Sync, which runs without the owner's lock
	syncMu sync.Mutex // held by the leader of a group commit
}

// fail marks the file unusable after an error that leaves its state
// unknown (a failed fsync, a failed undo of a short write).
func (s *syncFile) fail(err error) error {
	err = fmt.Errorf("%w: %v (the log refuses writes until kafka-rest restarts and recovers it)", ErrStorage, err)
	s.failed.CompareAndSwap(nil, &err)
	return err
}

// broken returns the error that made the file unusable, or nil.
func (s *syncFile) broken() error {
	if p := s.failed.Load(); p != nil {
		return *p
	}
	return nil
}

// write appends b and returns the sequence number to pass to Sync. A
// failed or short write is undone by truncating the file back. Called
// with the owner's lock held.
func (s *syncFile) write(b []byte) (int64, error) {
	if err := s.broken(); err != nil {
		return 0, err
	}
	n, err := s.f.Write(b)
	if err != nil {
		if n > 0 {
			if terr := s.f.Truncate(s.size); terr != nil {
				return 0, s.fail(fmt.Errorf("write %s: %v; cutting it back failed: %v", s.f.Name(), err, terr))
			}
		}
		return 0, fmt.Errorf("%w: write %s: %v", ErrStorage, s.f.Name(), err)
	}
	s.size += int64(n)
	return s.written.Add(int64(n)), nil
}

// swap makes f, of length size, the file written next. The old file's
// bytes are synced first unless nosync, so that Sync needs to fsync only
// the current file. Called with the owner's lock held.
func (s *syncFile) swap(f *os.File, size int64, nosync bool) error {
	old := s.f
	if old != nil && !nosync {
		if err := old.Sync(); err != nil {
			return s.fail(fmt.Errorf("fsync %s: %v", old.Name(), err))
		}
	}
	s.mu.Lock()
	s.f, s.size = f, size
	if old != nil {
		switch {
		case nosync:
			old.Close() // no Sync leader exists without fsyncs
		case s.syncMu.TryLock():
			// No leader is fsyncing old (one takes the file under
			// syncMu): closed now, not at the next Sync, which with
			// SyncInterval may be an interval away, each roll till
			// then keeping one more file open.
			old.Close()
			s.syncMu.Unlock()
		default:
			s.retired = append(s.retired, old) // the leader's; closed by the next Sync
		}
	}
	s.mu.Unlock()
	if !nosync {
		// Bytes before the swap are durable.
		for {
			cur := s.synced.Load()
			w := s.written.Load()
			if cur >= w || s.synced.CompareAndSwap(cur, w) {
				break
			}
		}
	}
	return nil
}

// Sync makes the bytes written up to seq durable (group commit; see
// syncFile). It is safe to call without the owner's lock.
func (s *syncFile) Sync(seq int64) error {
	if s.synced.Load() >= seq {
		return s.broken()
	}
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	if err := s.broken(); err != nil {
		return err
	}
	if s.synced.Load() >= seq {
		return nil
	}
	s.mu.Lock()
	f, retired := s.f, s.retired
	s.retired = nil
	target := s.written.Load()
	s.mu.Unlock()
	if f == nil {
		return nil
	}
	s.fsyncs.Add(1)
	if err := f.Sync(); err != nil {
		return s.fail(fmt.Errorf("fsync %s: %v", f.Name(), err))
	}
	for _, r := range retired {
		r.Close()
	}
	for {
		cur := s.synced.Load()
		if cur >= target || s.synced.CompareAndSwap(cur, target) {
			break
		}
	}
	return nil
}

// dirty reports whether some written bytes are not synced.
func (s *syncFile) dirty() bool { return s.synced.Load() < s.written.Load() }

// close syncs unless nosync, and closes the files.
func (s *syncFile) close(nosync bool) error {
	var err error
	if !nosync && s.f != nil && s.broken() == nil {
		err = s.Sync(s.written.Load())
	}
	s.syncMu.Lock()
	s.mu.Lock()
	if s.f != nil {
		s.f.Close()
		s.f = nil
	}
	for _, r := range s.retired {
		r.Close()
	}
	s.retired = nil
	s.mu.Unlock()
	s.syncMu.Unlock()
	return err
}
