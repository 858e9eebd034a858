package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/transport"
)

// envelope is what the rpc-* headers of one record say, for printing.
type envelope struct {
	Kind        string `json:"kind"` // request, reply, notify, progress, or legacy
	ID          string `json:"id,omitempty"`
	Correlation string `json:"correlation,omitempty"`
	From        string `json:"from,omitempty"`
	Method      string `json:"method,omitempty"`
	ReplyTo     string `json:"reply_to,omitempty"`
	Code        string `json:"code,omitempty"`
	Error       string `json:"error,omitempty"`
}

func envelopeOf(m *transport.Message) envelope {
	var e envelope
	rpcHeaders := false
	for _, h := range m.Headers {
		if strings.HasPrefix(h.Key, "rpc-") {
			rpcHeaders = true
		}
		switch h.Key {
		case rpc.HeaderKind:
			e.Kind = h.Value
		case rpc.HeaderID:
			e.ID = h.Value
		case rpc.HeaderCorrelationID:
			e.Correlation = h.Value
		case rpc.HeaderFrom:
			e.From = h.Value
		case rpc.HeaderMethod:
			e.Method = h.Value
		case rpc.HeaderReplyTo:
			e.ReplyTo = h.Value
		case rpc.HeaderErrorCode:
			e.Code = h.Value
		case rpc.HeaderError:
			e.Error = h.Value
		}
	}
	if !rpcHeaders {
		e.Kind = "legacy"
	}
	return e
}

// readPayload returns the payload argument: JSON given inline, "-" for
// stdin, or null when absent. It must be valid JSON.
func readPayload(e *env, args []string) (json.RawMessage, error) {
	var b []byte
	switch {
	case len(args) == 0:
		return json.RawMessage("null"), nil
	case args[0] == "-":
		var err error
		if b, err = io.ReadAll(e.stdin); err != nil {
			return nil, usageErr("reading the payload from stdin: %v", err)
		}
	default:
		b = []byte(args[0])
	}
	b = bytes.TrimSpace(b)
	if !json.Valid(b) {
		var v any
		err := json.Unmarshal(b, &v)
		return nil, usageErr("the payload is not valid JSON: %v", err)
	}
	return b, nil
}

// printJSON writes v as one line of JSON.
func printJSON(w io.Writer, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: encoding output: %v\n", exitProgName, err)
		return
	}
	w.Write(append(b, '\n'))
}

// pretty returns JSON indented for a person, or the text as it is when it
// is not JSON.
func pretty(b []byte) string {
	var buf bytes.Buffer
	if json.Indent(&buf, b, "", "  ") != nil {
		return string(b)
	}
	return buf.String()
}

// rawOrString is b as JSON: itself when valid, else a JSON string.
func rawOrString(b []byte) json.RawMessage {
	if len(b) == 0 {
		return json.RawMessage("null")
	}
	if json.Valid(b) {
		return b
	}
	s, _ := json.Marshal(string(b))
	return s
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
