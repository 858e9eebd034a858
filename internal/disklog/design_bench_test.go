package disklog

import (
	"encoding/binary"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/kafkarpc/kafkarpc/transport"
)

// BenchmarkDesignAppend is the benchmark behind the storage design: one op
// is a batch of 100 records (≈150 bytes each) appended to one partition and
// acknowledged, by 1 and 4 concurrent writers, into
//
//   - segment: this package's segment files (the chosen design), and
//   - bbolt: go.etcd.io/bbolt v1.5.0, a bucket per partition keyed by the
//     batch's base offset, one read-write transaction per batch (DB.Batch,
//     bbolt's group commit, with several writers),
//
// each durable (fsync before the acknowledgement: SyncAlways; bbolt's
// default) and not (SyncNever; bbolt with NoSync). msgs/s is the figure.
//
//	go test -run '^$' -bench DesignAppend -benchtime 2s ./internal/disklog/
func BenchmarkDesignAppend(b *testing.B) {
	batch := make([]transport.Message, 100)
	for i := range batch {
		batch[i] = transport.Message{Key: fmt.Sprint("key-", i), Value: make([]byte, 140), Time: time.UnixMilli(1_700_000_000_000)}
	}
	for _, durable := range []bool{true, false} {
		for _, writers := range []int{1, 4} {
			name := fmt.Sprintf("durable=%v/writers=%d", durable, writers)
			b.Run("segment/"+name, func(b *testing.B) {
				policy := SyncAlways
				if !durable {
					policy = SyncNever
				}
				d := open(b, b.TempDir(), Options{Sync: policy})
				l, _ := collect(b, d, "t", 0)
				var mu sync.Mutex // the broker's partition lock
				runWriters(b, writers, len(batch), func() error {
					mu.Lock()
					seq, err := l.Append(batch, time.Now())
					mu.Unlock()
					if err != nil {
						return err
					}
					return l.Sync(seq)
				})
			})
			b.Run("bbolt/"+name, func(b *testing.B) {
				db, err := bolt.Open(filepath.Join(b.TempDir(), "bolt.db"), 0o644, &bolt.Options{NoSync: !durable})
				if err != nil {
					b.Fatal(err)
				}
				defer db.Close()
				var next int64 // guarded by bbolt's writer lock
				var buf []byte
				update := db.Update
				if writers > 1 {
					update = db.Batch // bbolt's own group commit of concurrent writers
				}
				runWriters(b, writers, len(batch), func() error {
					return update(func(tx *bolt.Tx) error {
						bk, err := tx.CreateBucketIfNotExists([]byte("t/0"))
						if err != nil {
							return err
						}
						var key [8]byte
						binary.BigEndian.PutUint64(key[:], uint64(next))
						buf = appendBatch(buf[:0], next, time.Now().UnixMilli(), batch)
						next += int64(len(batch))
						return bk.Put(key[:], buf)
					})
				})
			})
		}
	}
}

// runWriters runs op b.N times from writers goroutines and reports msgs/s
// for per records an op.
func runWriters(b *testing.B, writers, per int, op func() error) {
	work := make(chan struct{})
	var wg sync.WaitGroup
	b.ResetTimer()
	for range writers {
		wg.Go(func() {
			for range work {
				if err := op(); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	for b.Loop() {
		work <- struct{}{}
	}
	close(work)
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N*per)/b.Elapsed().Seconds(), "msgs/s")
}
