// Package disklog is the on-disk storage of kafkarpc's durable embedded
// broker (memory.NewDurable, kafka-rest --data-dir): one append-only log of
// segment files per partition, as Kafka's own log is laid out, and one
// metadata log for topics and committed offsets.
//
// Layout of a data directory:
//
//	LOCK                         flock(2)ed by the process using the dir; holds its pid
//	meta.log                     topics, committed offsets, deleted groups (CRC-framed entries)
//	logs/<topic>/<partition>/<base offset, 20 digits>.log   segment files
//
// A segment holds batches, one per append of a partition's records by one
// produce call. Each batch is framed as
//
//	length uint32 (of the payload) | crc32c uint32 (of the payload) | payload
//	payload: base offset int64 | append time (unix ms) int64 | count uint32 | records
//	record:  time ms varint | key uvarint+bytes | value varint (-1: nil)+bytes |
//	         headers uvarint, each key uvarint+bytes, value uvarint+bytes
//
// all integers big-endian. Recovery (Open, Dir.Log) reads every batch and
// checks its frame, CRC and base offset: the first bad batch of a
// partition's last segment is a torn tail (a write cut short by a crash)
// and the file is cut there; a bad batch in an earlier segment damages the
// log in the middle, and the records before the next segment are dropped
// (renamed, not deleted) so the partition stays a dense run of offsets.
//
// Appends are write(2)s to files opened O_APPEND: once Append returns, a
// SIGKILL of the process loses nothing. What a machine crash can lose is the
// SyncPolicy's business; SyncAlways fsyncs with group commit (see
// Log.Sync). A failed write is undone by truncating the file to its length
// before it, and makes Append fail with an error wrapping ErrStorage.
//
// Concurrency: a Dir and its Logs are safe for concurrent use, except that
// the appends of one Log must be serialised by the caller (the broker holds
// its partition lock), which fixes the order of records and offsets.
package disklog
