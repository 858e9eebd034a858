package restserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/kafkarpc/kafkarpc/internal/restwire"
	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// httpError is an error with the HTTP status it is answered with.
type httpError struct {
	status int
	msg    string
	err    error  // cause, if any
	allow  string // Allow header of a 405

	retryAfter string // Retry-After header, in seconds, if any
}

func (e *httpError) Error() string { return e.msg }
func (e *httpError) Unwrap() error { return e.err }

func errorf(status int, format string, args ...any) *httpError {
	err := fmt.Errorf(format, args...)
	return &httpError{status: status, msg: err.Error(), err: errors.Unwrap(err)}
}

func badRequest(msg string) *httpError { return &httpError{status: http.StatusBadRequest, msg: msg} }

// ErrUnavailable is wrapped by a [Backend]'s error when the broker cannot
// serve the request now but may shortly (a consumer group rebalancing, a
// group coordinator or partition leader moving). The server answers 503
// with Retry-After: 1 and the error's text, so the client retries.
var ErrUnavailable = errors.New("backend temporarily unavailable")

// errInstanceGone: the consumer instance was deleted, expired or replaced
// while a request was using it.
var errInstanceGone = errors.New("consumer instance was closed")

// statusOf maps an error to the HTTP status of §11 of the project's
// Upstash REST notes.
func statusOf(err error) int {
	var he *httpError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &he):
		return he.status
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, transport.ErrUnknownTopic), errors.Is(err, errInstanceGone):
		return http.StatusNotFound
	case errors.Is(err, transport.ErrMessageTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, transport.ErrInvalid), errors.Is(err, transport.ErrNotAssigned):
		return http.StatusBadRequest
	case errors.Is(err, transport.ErrFenced):
		return http.StatusNotFound
	case errors.Is(err, memory.ErrStorage):
		// The durable broker could not write (a full disk): nothing of
		// the failed write was acknowledged.
		return http.StatusInsufficientStorage
	case errors.Is(err, transport.ErrClosed), errors.Is(err, context.Canceled), errors.Is(err, ErrUnavailable):
		return http.StatusServiceUnavailable
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout
	}
	return http.StatusInternalServerError
}

// messageOf is the text put in the JSON error body.
func messageOf(err error, status int) string {
	var mbe *http.MaxBytesError
	var he *httpError
	switch {
	case errors.As(err, &mbe):
		return fmt.Sprintf("request body is over the limit of %d bytes", mbe.Limit)
	case errors.Is(err, transport.ErrFenced) && !errors.As(err, &he):
		return "consumer instance was replaced by a newer member with the same instance id: " + err.Error()
	case errors.Is(err, context.Canceled) && status == http.StatusServiceUnavailable:
		return "server is shutting down"
	}
	if status == http.StatusInternalServerError && !errors.As(err, &he) {
		// A backend fault: the details are for the log, not the client.
		return "internal server error (the server log has the details)"
	}
	return backendText(err.Error())
}

// backendText drops the package prefixes of a backend error's text
// ("memory: produce to \"x\": transport: unknown topic" becomes
// "produce to \"x\": unknown topic"), keeping the words clients match.
func backendText(msg string) string {
	msg = strings.TrimPrefix(strings.TrimPrefix(msg, "memory: "), "kafkabackend: ")
	return strings.ReplaceAll(msg, "transport: ", "")
}

// writeError answers err as {"error": "...", "status": N}.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	status := statusOf(err)
	msg := messageOf(err, status)
	switch status {
	case http.StatusUnauthorized:
		w.Header().Set("WWW-Authenticate", `Basic realm="kafka-rest", charset="UTF-8"`)
	case http.StatusMethodNotAllowed:
		var he *httpError
		if errors.As(err, &he) && he.allow != "" {
			w.Header().Set("Allow", he.allow)
		}
	}
	var he *httpError
	if errors.As(err, &he) && he.retryAfter != "" {
		w.Header().Set("Retry-After", he.retryAfter)
	} else if errors.Is(err, ErrUnavailable) {
		w.Header().Set("Retry-After", "1")
	}
	if status >= 500 && !(status == http.StatusServiceUnavailable && s.closing()) {
		s.log.Error("kafka-rest: backend fault", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
	}
	b := getBuf()
	*b = append(*b, `{"error":`...)
	*b = restwire.AppendString(*b, msg, restwire.EscapeServer)
	*b = append(*b, `,"status":`...)
	*b = strconv.AppendInt(*b, int64(status), 10)
	*b = append(*b, '}')
	writeJSON(w, status, *b)
	putBuf(b)
}
