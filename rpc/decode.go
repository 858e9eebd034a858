package rpc

import (
	"encoding/json"
	"io"
	"reflect"
	"sync"
	"unsafe"

	"github.com/kafkarpc/kafkarpc/internal/jsonplan"
)

// Payload decoding without json.Unmarshal's per-call allocations.
//
// json.Unmarshal builds a decoder for every call (its state, its scanner's
// stack, the field path it keeps for errors): five allocations for a small
// struct before the first decoded string. A json.Decoder keeps all of that
// from one value to the next, so a pooled one decodes the same payload with
// only the allocations the value itself needs. The decoder is only an
// engine here: decodeTyped gives the same results and the same errors as
// json.Unmarshal (any payload the pooled decoder does not read whole as one
// valid value is decoded again by json.Unmarshal, whose answer is
// returned; see decodePooled for the errors it keeps).
// A type's UnmarshalJSON gets bytes of the decoder's buffer, which the next
// decode overwrites: as encoding/json requires, it must copy what it keeps.
//
// Before that engine, a plain struct type (strings, bools, numbers, nested
// structs, slices of and pointers to these: see jsonplan.For) is decoded by
// its jsonplan.Plan, which walks the payload once where encoding/json's
// scanner steps through it byte by byte (for {"id":1,"name":"report"},
// about 57 ns against the pooled decoder's 390). A plan only takes payloads
// it decodes exactly as json.Unmarshal does, without error; any other
// payload goes on to the pooled decoder as before. (Built with
// GOEXPERIMENT=jsonv2, encoding/json's rules are v2's, not the ones a plan
// copies: no type has a plan then.)

// maxPooledDecode is the largest payload decoded with a pooled decoder. A
// json.Decoder's buffer grows to hold the value it decodes and never
// shrinks: larger payloads use json.Unmarshal, so that the pool keeps no
// large buffers alive.
const maxPooledDecode = 16 << 10

// pooledDecoder is a json.Decoder reading from a payload set per use.
type pooledDecoder struct {
	src payloadReader
	dec *json.Decoder
}

// payloadReader reads one payload, then reports io.EOF (which a
// json.Decoder needs to see the end of a top-level number).
type payloadReader struct{ b []byte }

func (r *payloadReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

var decoderPool = sync.Pool{New: func() any {
	d := new(pooledDecoder)
	d.dec = json.NewDecoder(&d.src)
	return d
}}

// decodePooled decodes data into v, which must point to a zero value,
// with a pooled decoder. It reports false when data is not one valid JSON
// value and whitespace: v may then be partly filled, and the caller zeroes
// it and decodes with json.Unmarshal, which says what is wrong as it
// would have.
//
// Otherwise its answer is json.Unmarshal's, error included: a Decoder reads
// the whole value, and checks it as Unmarshal checks its input, before it
// decodes it with the same code as Unmarshal, from the same first byte
// (the one after the previous use, which read its payload whole). An error
// then (a type mismatch, a field's UnmarshalJSON failing) is the one
// Unmarshal would give, and is kept: decoding again would run the type's
// UnmarshalJSON methods a second time. (One case differs: a value followed
// by more than whitespace is decoded before the rest is seen, so its
// UnmarshalJSON methods run once where json.Unmarshal, which checks the
// whole payload first, runs none; the error is Unmarshal's.)
func decodePooled(data []byte, v any) (bool, error) {
	if len(data) == 0 || len(data) > maxPooledDecode {
		return false, nil
	}
	// The decoder reads the payload without its trailing whitespace (a
	// json.Encoder ends every value with a newline): one valid value
	// followed by whitespace is then read to its last byte, as a payload
	// without, rather than decoded here and again by json.Unmarshal
	// (running UnmarshalJSON methods twice), and the decoder keeps no
	// whitespace for its next use, where it would shift the offsets of
	// that use's errors. Whitespace is not part of any value's last byte
	// (a string ends with its quote): data is valid exactly when its
	// trimmed part is.
	n := len(data)
	for n > 0 && isJSONSpace(data[n-1]) {
		n--
	}
	if n == 0 {
		return false, nil
	}
	d := decoderPool.Get().(*pooledDecoder)
	d.src.b = data[:n]
	start := d.dec.InputOffset()
	err := d.dec.Decode(v)
	// More reports false at the end of the payload (and at a stray '}'
	// or ']', which the offset tells apart). Decode moves the offset past
	// the value only once it has read it whole and valid (a read or
	// syntax error leaves it); an error after that is the decoding's and
	// leaves the decoder usable.
	if d.dec.More() || d.dec.InputOffset()-start != int64(n) {
		return false, nil // dropped: a json.Decoder keeps its read errors
	}
	// Everything read, the decoder holds nothing for its next use.
	decoderPool.Put(d)
	return true, err
}

// isJSONSpace reports whether c is whitespace in JSON's grammar.
func isJSONSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// typeDecoders holds, per type, what decodeTyped needs: a *typeDecoder.
var typeDecoders sync.Map // reflect.Type → *typeDecoder

// typeDecoder is decodeTyped's state for one type: its jsonplan.Plan (nil
// for a type outside the plan's shapes) and a sync.Pool of *T for the
// pooled json.Decoder.
type typeDecoder struct {
	plan    *jsonplan.Plan
	targets sync.Pool
}

// decodeTyped is json.Unmarshal into a new T: the same result, the same
// error. A plain struct type is decoded by its plan when the plan takes the
// payload. Otherwise the pointer json needs to decode into comes from a
// pool of its type, so that the value does not escape to the heap for
// every call: it is copied out and the pooled one zeroed.
func decodeTyped[T any](data []byte) (T, error) {
	typ := reflect.TypeFor[T]()
	td, ok := typeDecoders.Load(typ)
	if !ok {
		td, _ = typeDecoders.LoadOrStore(typ, &typeDecoder{
			plan:    jsonplan.For(typ),
			targets: sync.Pool{New: func() any { return new(T) }},
		})
	}
	tdec := td.(*typeDecoder)
	var zero T
	if tdec.plan != nil {
		var out T
		if tdec.plan.Decode(data, unsafe.Pointer(&out)) {
			return out, nil
		}
	}
	ptr := tdec.targets.Get().(*T)
	ok, err := decodePooled(data, ptr)
	if !ok {
		*ptr = zero
		err = json.Unmarshal(data, ptr)
	}
	out := *ptr
	*ptr = zero // the pool keeps nothing the value refers to alive
	tdec.targets.Put(ptr)
	return out, err
}
