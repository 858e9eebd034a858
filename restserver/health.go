package restserver

import (
	"context"
	"log/slog"
	"net/http"
	"time"
)

// Operations endpoints, outside the Upstash API (§11):
//
//	GET /healthz  200 {"status":"ok"} while the process serves HTTP at all
//	              (a liveness probe: restart the process when it fails).
//	GET /readyz   200 {"status":"ready"} when the backend answers, else 503
//	              {"status":"not ready"} (a readiness probe: send traffic only
//	              when it passes). The cause is logged, never answered.
//	GET /metrics  the Prometheus scrape (see metrics.go).
//
// /healthz and /readyz need no credentials and answer nothing but their
// status, so that a load balancer can probe them. /metrics names topics and
// consumer groups, so when authentication is on it needs an admin's Basic
// credentials (Prometheus: basic_auth in the scrape config); without
// authentication it is open like every route. HEAD is answered as GET.

// Readier is an optional method of a [Backend]: Ready reports whether the
// backend can serve requests now (a Kafka backend: the cluster answers).
// /readyz calls it with a short timeout. A backend without it is ready
// when its Topics call succeeds.
type Readier interface {
	Ready(ctx context.Context) error
}

// readyTimeout bounds one /readyz check of the backend.
const readyTimeout = 2 * time.Second

// serveOps answers the operations endpoints; it reports false for any
// other path.
func (s *Server) serveOps(w http.ResponseWriter, r *http.Request) bool {
	var h func(*Server, http.ResponseWriter, *http.Request) error
	switch r.URL.Path {
	case "/healthz":
		h = (*Server).handleHealthz
	case "/readyz":
		h = (*Server).handleReadyz
	case "/metrics":
		h = (*Server).handleMetrics
	default:
		return false
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		s.writeError(w, r, &httpError{status: http.StatusMethodNotAllowed, allow: "GET, HEAD",
			msg: "method " + r.Method + " is not allowed on " + r.URL.Path + "; use GET or HEAD"})
		return true
	}
	if err := h(s, w, r); err != nil {
		s.writeError(w, r, err)
	}
	return true
}

func (s *Server) handleHealthz(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, []byte(`{"status":"ok"}`))
	return nil
}

func (s *Server) handleReadyz(w http.ResponseWriter, r *http.Request) error {
	if err := s.ready(r.Context()); err != nil {
		s.log.Warn("kafka-rest: not ready", "err", err)
		writeJSON(w, http.StatusServiceUnavailable, []byte(`{"status":"not ready"}`))
		return nil
	}
	writeJSON(w, http.StatusOK, []byte(`{"status":"ready"}`))
	return nil
}

// ready checks the server and its backend.
func (s *Server) ready(ctx context.Context) error {
	if s.closing() {
		return errShuttingDown
	}
	// /readyz needs no credentials: without this, every probe of anyone
	// on the network was a metadata request to the brokers (a flood of
	// probes, a flood of broker requests). One check runs at a time and
	// its result answers the probes of the next readyCacheTTL.
	s.readyMu.Lock()
	defer s.readyMu.Unlock()
	if !s.readyAt.IsZero() && time.Since(s.readyAt) < readyCacheTTL {
		return s.readyErr
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), readyTimeout)
	defer cancel()
	var err error
	if rd, ok := s.backend.(Readier); ok {
		err = rd.Ready(ctx)
	} else {
		_, err = s.backend.Topics(ctx)
	}
	s.readyAt, s.readyErr = time.Now(), err
	return err
}

// readyCacheTTL is how long one check of the backend answers /readyz.
const readyCacheTTL = time.Second

var errShuttingDown = &httpError{status: http.StatusServiceUnavailable, msg: "server is shutting down"}

func (s *Server) handleMetrics(w http.ResponseWriter, r *http.Request) error {
	if s.auth.enabled() {
		who, err := s.authenticate(r, false)
		if err != nil {
			w.Header().Set("Connection", "close")
			return err
		}
		markAuthenticated(r)
		if who != nil && !who.admin {
			return errorf(http.StatusForbidden, "user %q may not read /metrics: it needs the admin right", who.name)
		}
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	if r.Method == http.MethodHead {
		w.WriteHeader(http.StatusOK)
		return nil
	}
	if err := s.writeMetrics(r.Context(), w); err != nil {
		s.log.Debug("kafka-rest: writing /metrics failed", "err", err)
	}
	return nil
}

// logAccess writes the access log line of one request: never its query
// (a /webhook query carries credentials), its headers (Authorization) or
// its body, nor the user name: an Upstash-style username is half of the
// credential pair.
func (s *Server) logAccess(r *http.Request, sw *statusWriter, took time.Duration) {
	status := sw.status
	if status == 0 {
		status = http.StatusOK
	}
	attrs := []slog.Attr{
		slog.String("remote", r.RemoteAddr),
		slog.String("method", r.Method),
		slog.String("path", r.URL.Path),
		slog.Int("status", status),
		slog.Int64("bytes", sw.bytes),
		slog.Duration("duration", took),
	}
	s.cfg.accessLog.LogAttrs(r.Context(), slog.LevelInfo, "access", attrs...)
}
