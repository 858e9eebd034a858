package upstash

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/kafkarpc/kafkarpc/transport"
)

// Error is a non-2xx answer from the REST server. Every such answer a
// Transport or Consumer returns is, or wraps, an *Error; get it with
// errors.As.
//
// errors.Is matches an *Error to the transport sentinel of the same meaning
// (see [Error.Unwrap]), so callers can test for transport.ErrUnknownTopic
// without knowing HTTP.
type Error struct {
	// Status is the HTTP status code, e.g. 404.
	Status int
	// Message is the server's JSON "error" text, or the start of the body
	// when it was not the documented JSON, or the status text when empty.
	Message string
	// Method and Path name the request, e.g. "POST" and "/produce". Path
	// holds no query string and no credentials.
	Method, Path string

	retryAfter time.Duration // from a Retry-After header on 429/503
}

// Error returns e.g. `upstash: POST /produce: 404 Not Found: topic "x" does not exist`.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("upstash: ")
	if e.Method != "" || e.Path != "" {
		b.WriteString(e.Method)
		b.WriteString(" ")
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	fmt.Fprintf(&b, "%d", e.Status)
	if t := http.StatusText(e.Status); t != "" {
		b.WriteString(" " + t)
	}
	if e.Message != "" && e.Message != http.StatusText(e.Status) {
		b.WriteString(": " + e.Message)
	}
	return b.String()
}

// Unwrap returns the transport sentinel matching the answer, or nil:
//
//   - 401 Unauthorized: [ErrUnauthenticated]; 403 Forbidden:
//     [ErrPermissionDenied] (wrapping transport.ErrUnauthenticated or
//     transport.ErrPermissionDenied, and transport.ErrInvalid)
//   - 413 Request Entity Too Large: transport.ErrMessageTooLarge
//   - a 404 whose message says the consumer instance was replaced by a newer
//     member or incarnation (on any route, a commit too): transport.ErrFenced
//   - a 4xx whose message says a partition is not assigned, a 409 Conflict
//     on a commit, or another 404 on a commit (the instance is gone, so it
//     owns nothing): transport.ErrNotAssigned
//   - 404 Not Found on a topic (produce, fetch, offsets, a consume naming an
//     unknown topic): transport.ErrUnknownTopic. A 404 for an unknown
//     consumer instance or route matches no sentinel.
//   - 400 Bad Request otherwise: transport.ErrInvalid
func (e *Error) Unwrap() error {
	msg := strings.ToLower(e.Message)
	commit := strings.HasPrefix(e.Path, "/commit/")
	switch {
	case e.Status == http.StatusUnauthorized:
		return ErrUnauthenticated
	case e.Status == http.StatusForbidden:
		return ErrPermissionDenied
	case e.Status == http.StatusRequestEntityTooLarge:
		return transport.ErrMessageTooLarge
	case e.Status == http.StatusNotFound && strings.Contains(msg, "replaced by a newer"):
		return transport.ErrFenced
	case e.Status >= 400 && e.Status < 500 && strings.Contains(msg, "not assigned"),
		commit && (e.Status == http.StatusConflict || e.Status == http.StatusNotFound):
		return transport.ErrNotAssigned
	case e.Status == http.StatusNotFound && strings.HasPrefix(msg, "unknown route"):
		// kafka-rest's answer to a path it does not serve (a wrong prefix
		// in the URL, say): its message names the path, "/topics" or
		// "/produce", which is not a missing topic.
		return nil
	case e.Status == http.StatusNotFound && isTopicNotFound(e.Path, msg):
		return transport.ErrUnknownTopic
	case e.Status == http.StatusBadRequest:
		return transport.ErrInvalid
	}
	return nil
}

// isTopicNotFound tells a 404 about a topic from one about a consumer
// instance or a route. The routes that name only topics answer 404 only for
// topics; the consumer routes name instances too, so their message decides.
func isTopicNotFound(path, lowerMsg string) bool {
	for _, p := range []string{"/produce", "/fetch", "/offsets/"} {
		if strings.HasPrefix(path, p) {
			return true
		}
	}
	if strings.Contains(lowerMsg, "unknown topic") {
		return true
	}
	if strings.Contains(lowerMsg, "instance") || strings.Contains(lowerMsg, "consumer") {
		return false
	}
	return strings.Contains(lowerMsg, "topic")
}

// Temporary reports whether the request may succeed if sent again: true for
// 5xx answers (but 501 and 505) and 429 Too Many Requests.
func (e *Error) Temporary() bool {
	switch {
	case e.Status == http.StatusTooManyRequests:
		return true
	case e.Status == http.StatusNotImplemented, e.Status == http.StatusHTTPVersionNotSupported:
		return false
	}
	return e.Status >= 500 && e.Status < 600
}

// retryable reports whether err, from one attempt, is worth another attempt.
// ctxErr is the caller's context error: once it is set nothing is retried.
func retryable(err error, ctxErr error) bool {
	if err == nil || ctxErr != nil {
		return false
	}
	var he *Error
	if errors.As(err, &he) {
		return he.Temporary()
	}
	var ce *connError
	if errors.As(err, &ce) {
		return ce.retryable()
	}
	return false
}

// connError is a failure below HTTP: the request could not be sent or its
// response could not be read (refused or reset connection, DNS failure,
// unexpected EOF, per-attempt timeout on a hung connection).
type connError struct {
	op  string // "send" or "read response"
	err error
}

func (e *connError) Error() string { return e.op + ": " + e.err.Error() }
func (e *connError) Unwrap() error { return e.err }

// retryable is true for all connection failures but those another attempt
// cannot fix: a certificate the client refuses, a redirect loop.
func (e *connError) retryable() bool {
	var (
		cv *tls.CertificateVerificationError
		ua x509.UnknownAuthorityError
		hn x509.HostnameError
		ci x509.CertificateInvalidError
		rh tls.RecordHeaderError
	)
	switch {
	case errors.As(e.err, &cv), errors.As(e.err, &ua), errors.As(e.err, &hn),
		errors.As(e.err, &ci), errors.As(e.err, &rh):
		return false
	case errors.Is(e.err, ErrRedirect):
		return false
	}
	return true
}

// ErrRedirect is wrapped by the error of a request the server answered with
// a redirect (3xx with a Location). The client never follows one: the REST
// API has fixed routes and no reason to move, and following would send the
// Basic credentials to another origin (another port, or from https to
// http) and turn a POST /produce into a bodiless GET. The error names the
// target. It is not retried.
// ErrUnauthenticated and ErrPermissionDenied are matched by the *Error of a
// 401 Unauthorized and a 403 Forbidden answer. Another attempt cannot fix
// wrong or missing credentials, so neither is retried; both wrap
// transport.ErrInvalid, which callers such as rpc already treat as permanent
// (the transport seam has no sentinel of its own for auth).
var (
	ErrUnauthenticated  = fmt.Errorf("upstash: unauthenticated (check the credentials): %w: %w", transport.ErrUnauthenticated, transport.ErrInvalid)
	ErrPermissionDenied = fmt.Errorf("upstash: permission denied (the credentials do not allow this): %w: %w", transport.ErrPermissionDenied, transport.ErrInvalid)
)

var ErrRedirect = errors.New("upstash: redirect refused")
