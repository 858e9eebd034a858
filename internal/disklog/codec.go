package disklog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"time"

	"github.com/kafkarpc/kafkarpc/transport"
)

// frameHeader is the length and CRC before each batch or meta entry.
const frameHeader = 8

// maxFrame bounds a frame's payload, so a damaged length cannot make
// recovery allocate gigabytes. A produce's records for one partition are
// far below it (the broker caps each record at its max message size, 1 MiB
// by default, and a REST request's body at a few MiB).
const maxFrame = 1 << 30

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errCorrupt marks a frame that fails its checks.
var errCorrupt = errors.New("corrupt frame")

// appendFrame appends payload framed by its length and CRC to dst. The
// caller reserved frameHeader bytes at dst[start:] and wrote the payload
// after them; appendFrame fills the header in.
func sealFrame(buf []byte, start int) {
	payload := buf[start+frameHeader:]
	binary.BigEndian.PutUint32(buf[start:], uint32(len(payload)))
	binary.BigEndian.PutUint32(buf[start+4:], crc32.Checksum(payload, castagnoli))
}

// readFrame checks the frame at the start of b and returns its payload and
// total length. It fails with errCorrupt when b is too short for the frame
// (a torn write) or the CRC does not match.
func readFrame(b []byte) (payload []byte, n int, err error) {
	if len(b) < frameHeader {
		return nil, 0, fmt.Errorf("%w: %d bytes left, a frame header needs %d", errCorrupt, len(b), frameHeader)
	}
	size := binary.BigEndian.Uint32(b)
	if size > maxFrame || int(size) > len(b)-frameHeader {
		return nil, 0, fmt.Errorf("%w: length %d with %d bytes left", errCorrupt, size, len(b)-frameHeader)
	}
	payload = b[frameHeader : frameHeader+int(size)]
	if crc32.Checksum(payload, castagnoli) != binary.BigEndian.Uint32(b[4:]) {
		return nil, 0, fmt.Errorf("%w: CRC mismatch", errCorrupt)
	}
	return payload, frameHeader + int(size), nil
}

// batchHeader is the fixed part of a batch payload.
const batchHeader = 8 + 8 + 4

// appendBatch appends to dst the framed batch of msgs, whose offsets are
// base, base+1, ..., appended at appendMs.
func appendBatch(dst []byte, base, appendMs int64, msgs []transport.Message) []byte {
	start := len(dst)
	dst = append(dst, make([]byte, frameHeader+batchHeader)...)
	h := dst[start+frameHeader:]
	binary.BigEndian.PutUint64(h, uint64(base))
	binary.BigEndian.PutUint64(h[8:], uint64(appendMs))
	binary.BigEndian.PutUint32(h[16:], uint32(len(msgs)))
	for i := range msgs {
		m := &msgs[i]
		dst = binary.AppendVarint(dst, m.Time.UnixMilli())
		dst = appendString(dst, m.Key)
		if m.Value == nil {
			dst = binary.AppendVarint(dst, -1)
		} else {
			dst = binary.AppendVarint(dst, int64(len(m.Value)))
			dst = append(dst, m.Value...)
		}
		dst = binary.AppendUvarint(dst, uint64(len(m.Headers)))
		for _, hd := range m.Headers {
			dst = appendString(dst, hd.Key)
			dst = appendString(dst, hd.Value)
		}
	}
	sealFrame(dst, start)
	return dst
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// Batch is one append's records, as recovery reads them back.
type Batch struct {
	// Base is the offset of the first record; the others follow densely.
	Base int64
	// Appended is when the broker appended the batch (for retention by age).
	Appended time.Time
	// Records with Offset and Time set; Topic and Partition are left to the
	// caller. Values point into the buffer the segment was read into (no
	// copy at start-up): a record kept keeps its segment's buffer, so memory
	// is freed by segment, as retention frees the files.
	Records []transport.Message
}

// decodeBatch decodes a batch payload.
func decodeBatch(p []byte) (Batch, error) {
	b, _, err := parseBatch(p, true)
	return b, err
}

// checkBatch checks a batch payload as decodeBatch does, and returns its
// base offset and record count, without building its records (recovery
// checks every segment before handing any batch over).
func checkBatch(p []byte) (base int64, count int, err error) {
	b, n, err := parseBatch(p, false)
	return b.Base, n, err
}

// parseBatch decodes a batch payload and returns it and its record count;
// without keep, the records are parsed but not stored (Records is nil).
func parseBatch(p []byte, keep bool) (Batch, int, error) {
	if len(p) < batchHeader {
		return Batch{}, 0, fmt.Errorf("%w: batch of %d bytes", errCorrupt, len(p))
	}
	b := Batch{
		Base:     int64(binary.BigEndian.Uint64(p)),
		Appended: time.UnixMilli(int64(binary.BigEndian.Uint64(p[8:]))),
	}
	n := binary.BigEndian.Uint32(p[16:])
	p = p[batchHeader:]
	if uint64(n) > uint64(len(p)) { // every record takes at least 4 bytes
		return Batch{}, 0, fmt.Errorf("%w: %d records in %d bytes", errCorrupt, n, len(p))
	}
	if keep {
		b.Records = make([]transport.Message, n)
	}
	d := decoder{b: p}
	for i := range int(n) {
		if !keep {
			// Parse only: no string or header allocated.
			d.varint()
			d.skip()
			if vl := d.varint(); vl >= 0 {
				d.bytes(vl)
			}
			nh := d.uvarint()
			if nh > uint64(len(d.b)) {
				d.fail()
				break
			}
			for range 2 * nh {
				d.skip()
			}
			continue
		}
		m := &b.Records[i]
		m.Offset = b.Base + int64(i)
		m.Time = time.UnixMilli(d.varint())
		m.Key = d.str()
		if vl := d.varint(); vl >= 0 {
			if v := d.bytes(vl); v != nil {
				m.Value = v[:len(v):len(v)]
			}
		}
		if nh := d.uvarint(); nh > 0 {
			if nh > uint64(len(d.b)) {
				d.fail()
				break
			}
			m.Headers = make([]transport.Header, nh)
			for j := range m.Headers {
				m.Headers[j] = transport.Header{Key: d.str(), Value: d.str()}
			}
		}
	}
	if d.bad || len(d.b) != 0 {
		return Batch{}, 0, fmt.Errorf("%w: records do not parse", errCorrupt)
	}
	return b, int(n), nil
}

// decoder reads varints and strings, remembering the first failure.
type decoder struct {
	b   []byte
	bad bool
}

func (d *decoder) fail() { d.bad, d.b = true, nil }

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes(n int64) []byte {
	if n < 0 || n > int64(len(d.b)) {
		d.fail()
		return nil
	}
	out := d.b[:n]
	d.b = d.b[n:]
	return out
}

func (d *decoder) str() string { return string(d.bytes(int64(d.uvarint()))) }

// skip passes over a string.
func (d *decoder) skip() { d.bytes(int64(d.uvarint())) }

func appendUvarint(dst []byte, v uint64) []byte { return binary.AppendUvarint(dst, v) }
func appendVarint(dst []byte, v int64) []byte   { return binary.AppendVarint(dst, v) }
