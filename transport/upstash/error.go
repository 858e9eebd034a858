package upstash

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
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
	b.WriteString(e.answer())
	return b.String()
}

// answer is the status and message part of Error, e.g. `404 Not Found:
// topic "x" does not exist`.
func (e *Error) answer() string {
	s := strconv.Itoa(e.Status)
	if t := http.StatusText(e.Status); t != "" {
		s += " " + t
	}
	if e.Message != "" && e.Message != http.StatusText(e.Status) {
		s += ": " + e.Message
	}
	return s
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
//     consumer instance matches no sentinel.
//   - a 404 for a route the server does not serve ("unknown route GET
//     /v1/topics": a wrong path in the URL): transport.ErrInvalid
//   - 400 Bad Request otherwise: transport.ErrInvalid
//   - an answer worth another attempt (see [Error.Temporary]: 5xx but 501
//     and 505, 429): transport.ErrUnavailable
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
	case e.Status == http.StatusNotFound && strings.HasPrefix(msg, "unknown route"):
		// kafka-rest's answer to a path it does not serve (a wrong prefix
		// in the URL, say): its message names the path, "/topics" or
		// "/produce", which is not a missing topic. No retry serves it
		// either: ErrInvalid, which callers such as rpc do not retry; on
		// a commit too, where it is no missing instance.
		return transport.ErrInvalid
	case e.Status >= 400 && e.Status < 500 && strings.Contains(msg, "not assigned"),
		commit && (e.Status == http.StatusConflict || e.Status == http.StatusNotFound):
		return transport.ErrNotAssigned
	case e.Status == http.StatusNotFound && isTopicNotFound(e.Path, msg):
		return transport.ErrUnknownTopic
	case e.Status == http.StatusBadRequest:
		return transport.ErrInvalid
	case e.Temporary():
		return transport.ErrUnavailable
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
// unexpected EOF, per-attempt timeout on a hung connection). One worth
// another attempt (see retryable) matches transport.ErrUnavailable.
type connError struct {
	op   string // the request, e.g. "POST /produce"
	read bool   // the response could not be read (else: not sent)
	err  error
}

func (e *connError) Error() string { return e.op + ": " + e.cause() }

// cause is the error without the request: net/http's *url.Error names the
// method and the whole URL again.
func (e *connError) cause() string {
	err := e.err
	var ue *url.Error
	if errors.As(err, &ue) && ue.Err != nil {
		err = ue.Err
	}
	msg := err.Error()
	if e.read {
		msg = "read response: " + msg
	}
	var rh tls.RecordHeaderError
	if errors.As(err, &rh) {
		// A URL without a scheme gets https://; kafka-rest and most local
		// servers speak plain HTTP, and Go's message does not say so.
		msg += " (the server does not speak TLS: if it serves plain HTTP, give its URL as http://host:port; a URL without a scheme gets https://)"
	}
	return msg
}

func (e *connError) Unwrap() []error {
	if e.retryable() {
		return []error{e.err, transport.ErrUnavailable}
	}
	return []error{e.err}
}

// describeAttempt is an attempt's error without the request it names.
func describeAttempt(err error) string {
	var he *Error
	if errors.As(err, &he) {
		return he.answer()
	}
	var ce *connError
	if errors.As(err, &ce) {
		return ce.cause()
	}
	return err.Error()
}

// opError is err as part of op (e.g. "tail"): `upstash: op: ` and err's
// text, whose own "upstash: " prefix is dropped.
type opError struct {
	op  string
	err error
}

// withOp wraps err as part of op; see opError.
func withOp(op string, err error) error { return &opError{op: op, err: err} }

func (e *opError) Error() string {
	return "upstash: " + e.op + ": " + strings.TrimPrefix(e.err.Error(), "upstash: ")
}

func (e *opError) Unwrap() error { return e.err }

// unavailableError is call's error when it gave up retrying a request the
// server did not answer, or answered with a 5xx or 429 (see call). It names
// the server's host once and the request once.
type unavailableError struct {
	method, path string
	host         string // of the base URL
	attempts     int
	elapsed      time.Duration
	why          string // why retrying stopped
	deadline     bool   // the caller's deadline: matches context.DeadlineExceeded
	last         error  // the last attempt's
}

// Error returns e.g. `upstash: GET /topics: server unavailable: context
// deadline exceeded: the next attempt (in 800ms) would be past the
// deadline, after 3 attempts in 700ms; last error: dial tcp 127.0.0.1:9:
// connect: connection refused`.
func (e *unavailableError) Error() string {
	last := describeAttempt(e.last)
	var b strings.Builder
	fmt.Fprintf(&b, "upstash: %s %s: server ", e.method, e.path)
	if !strings.Contains(last, e.host) {
		fmt.Fprintf(&b, "at %s ", e.host)
	}
	b.WriteString("unavailable: ")
	if e.deadline {
		b.WriteString(context.DeadlineExceeded.Error() + ": ")
	}
	fmt.Fprintf(&b, "%s, after %d attempts in %v; last error: %s", e.why, e.attempts, e.elapsed.Round(time.Millisecond), last)
	return b.String()
}

func (e *unavailableError) Unwrap() []error {
	if e.deadline {
		return []error{transport.ErrUnavailable, context.DeadlineExceeded, e.last}
	}
	return []error{transport.ErrUnavailable, e.last}
}

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
