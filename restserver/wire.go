package restserver

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"sync"
)

// Reading request bodies. The wire shapes, and the fast paths of the hot
// bodies, are in internal/restwire, shared with the client; what is here is
// the server's side of it: the shape checks and errors of §12, and the
// answer buffers.

// bodyShape is what a request body holds.
type bodyShape int

const (
	bodyEmpty  bodyShape = iota // nothing but white space
	bodyObject                  // a JSON object
	bodyArray                   // a JSON array
	bodyOther                   // anything else
)

func shapeOf(body []byte) bodyShape {
	body = bytes.TrimLeft(body, " \t\r\n")
	switch {
	case len(body) == 0:
		return bodyEmpty
	case body[0] == '{':
		return bodyObject
	case body[0] == '[':
		return bodyArray
	}
	return bodyOther
}

// decodeOneOrMany decodes a body that holds either one T or an array of T.
// An empty body or [] gives an empty slice; what names the expected thing
// in errors.
func decodeOneOrMany[T any](body []byte, what string) ([]T, error) {
	switch shapeOf(body) {
	case bodyEmpty:
		return nil, nil
	case bodyObject:
		var one T
		if err := json.Unmarshal(body, &one); err != nil {
			return nil, malformed(err)
		}
		return []T{one}, nil
	case bodyArray:
		var many []T
		if err := json.Unmarshal(body, &many); err != nil {
			return nil, malformed(err)
		}
		return many, nil
	}
	return nil, badRequest(fmt.Sprintf("malformed JSON: expected %s object or an array of them", what))
}

// decodeObject decodes a body that must hold one JSON object; an empty body
// leaves v as it is.
func decodeObject(body []byte, v any, what string) error {
	switch shapeOf(body) {
	case bodyEmpty:
		return nil
	case bodyObject:
		if err := json.Unmarshal(body, v); err != nil {
			return malformed(err)
		}
		return nil
	}
	return badRequest(fmt.Sprintf("malformed JSON: expected %s object", what))
}

func malformed(err error) *httpError {
	msg := strings.TrimPrefix(err.Error(), "json: ")
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		// Not encoding/json's text, which names the server's Go types.
		msg = fmt.Sprintf("field %q must be %s, not a JSON %s", te.Field, jsonKind(te.Type), te.Value)
	}
	return &httpError{status: http.StatusBadRequest, msg: "malformed JSON: " + msg, err: err}
}

// jsonKind names what JSON a Go type of the wire shapes takes.
func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Pointer:
		return jsonKind(t.Elem())
	}
	return "an object"
}

// Response building.

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

func getBuf() *[]byte { return bufPool.Get().(*[]byte) }

func putBuf(b *[]byte) {
	if cap(*b) > 1<<20 {
		return // let big ones go
	}
	*b = (*b)[:0]
	bufPool.Put(b)
}

// writeJSON answers status with the JSON body. A body that fits net/http's
// response buffer (autoLengthBytes) gets its Content-Length from net/http,
// which computes it when the handler returns; a larger one is given it
// here, so that it is not sent chunked.
func writeJSON(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h["Content-Type"] = jsonContentType[:1:1] // shared: net/http copies the header at WriteHeader
	if len(body) >= autoLengthBytes {
		h["Content-Length"] = []string{strconv.Itoa(len(body))}
	}
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// jsonContentType is the Content-Type of every answer.
var jsonContentType = []string{"application/json"}

// autoLengthBytes is net/http's bufferBeforeChunkingSize: a response body
// written whole below it, by a handler that then returns, is sent with a
// Content-Length that net/http computes.
const autoLengthBytes = 2048
