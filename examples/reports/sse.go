package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strings"
)

// Server-Sent Events, both ends: writeSSE for the web app, readSSE for the
// one-command run (and the tests) that follow a report over HTTP.

// sseEvent is one event of a text/event-stream.
type sseEvent struct {
	ID    string
	Event string
	Data  string
}

// writeSSE writes one event. data may span lines; each gets its own
// "data:" field.
func writeSSE(w io.Writer, id, event string, data []byte) error {
	var b bytes.Buffer
	if id != "" {
		fmt.Fprintf(&b, "id: %s\n", id)
	}
	if event != "" {
		fmt.Fprintf(&b, "event: %s\n", event)
	}
	for line := range bytes.SplitSeq(data, []byte("\n")) {
		fmt.Fprintf(&b, "data: %s\n", line)
	}
	b.WriteByte('\n')
	_, err := w.Write(b.Bytes())
	return err
}

// readSSE reads events from r and calls fn for each until fn returns false,
// r ends (io.EOF is returned as nil) or fails. Comments and retry fields are
// skipped.
func readSSE(r io.Reader, fn func(sseEvent) bool) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	var ev sseEvent
	var data []string
	seen := false
	for sc.Scan() {
		line := sc.Text()
		if line == "" { // end of an event
			if seen {
				ev.Data = strings.Join(data, "\n")
				if !fn(ev) {
					return nil
				}
			}
			ev, data, seen = sseEvent{}, nil, false
			continue
		}
		if strings.HasPrefix(line, ":") {
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "id":
			ev.ID, seen = value, true
		case "event":
			ev.Event, seen = value, true
		case "data":
			data, seen = append(data, value), true
		}
	}
	return sc.Err()
}
