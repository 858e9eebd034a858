package resttest

import (
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/kafkarpc/kafkarpc/restserver"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// Config configures [Start]. The zero value is a server over a default
// embedded broker, without authentication, logging nowhere, with no faults.
type Config struct {
	// Broker are the embedded broker's options.
	Broker []memory.Option
	// Server are the REST server's options, applied after the default
	// restserver.WithLogger (a logger that discards), which a
	// restserver.WithLogger here replaces.
	Server []restserver.Option
	// Backend, when set, wraps the memory backend before the server is
	// made (to make a backend fail on purpose, say).
	Backend func(restserver.Backend) restserver.Backend
	// NewBackend, when set, makes the backend the server uses instead of
	// an embedded broker (Broker and the Broker field of Server are then
	// unused and nil): a Kafka backend, say. Backend still wraps what it
	// returns. Whoever NewBackend registers with tb closes the backend;
	// it runs before the server's cleanups are registered, so the backend
	// is closed after the server.
	NewBackend func(tb testing.TB) restserver.Backend
	// Faults, when set, puts a [FaultHandler] with these faults in front
	// of the server.
	Faults *Faults
	// Serve, when true, serves with the REST server's own Serve (its
	// http.Server, with the timeouts of restserver.WithTimeouts) instead
	// of an httptest.Server: for tests of Serve itself. It excludes Faults.
	Serve bool
}

// Server is a REST server over an embedded broker, served over HTTP/1.1 on
// a loopback port by an httptest.Server. Its fields are set by [Start] and
// must not be changed; the values they point to are safe for concurrent
// use.
type Server struct {
	// URL is the base URL, as http://127.0.0.1:port.
	URL string
	// REST is the REST server.
	REST *restserver.Server
	// Broker is the embedded broker behind REST; nil with Config.NewBackend.
	Broker *memory.Broker
	// Faults injects Config.Faults; nil without them.
	Faults *FaultHandler
	// HTTP is the loopback HTTP server; its Client() talks to it. Nil
	// with Config.Serve.
	HTTP *httptest.Server
}

// Start starts a REST server over a new embedded broker on a loopback port,
// serving when it returns, and registers with tb's Cleanup the closing of
// the REST server (which ends long polls), of the HTTP server (which waits
// for the handlers) and of the broker, in that order. As cleanups run last
// in first out, clients made after Start are closed before the server. It
// fails tb on a bad option, and with Config.Serve when Serve fails or does
// not return within 10 s of Close.
func Start(tb testing.TB, cfg Config) *Server {
	tb.Helper()
	if cfg.Serve && cfg.Faults != nil {
		tb.Fatal("resttest: Config.Serve and Config.Faults together")
	}
	var (
		b       *memory.Broker
		backend restserver.Backend
	)
	if cfg.NewBackend != nil {
		backend = cfg.NewBackend(tb)
	} else {
		var err error
		if b, err = memory.New(cfg.Broker...); err != nil {
			tb.Fatalf("resttest: memory.New: %v", err)
		}
		backend = restserver.NewMemoryBackend(b)
	}
	if cfg.Backend != nil {
		backend = cfg.Backend(backend)
	}
	opts := append([]restserver.Option{restserver.WithLogger(slog.New(slog.DiscardHandler))}, cfg.Server...)
	rs, err := restserver.New(backend, opts...)
	if err != nil {
		if b != nil {
			_ = b.Close()
		}
		tb.Fatalf("resttest: restserver.New: %v", err)
	}
	s := &Server{REST: rs, Broker: b}
	if b != nil {
		tb.Cleanup(func() {
			if err := b.Close(); err != nil {
				tb.Errorf("resttest: closing the broker: %v", err)
			}
		})
	}
	if cfg.Serve {
		s.serve(tb)
		return s
	}
	var h http.Handler = rs
	if cfg.Faults != nil {
		s.Faults = NewFaultHandler(rs, *cfg.Faults)
		h = s.Faults
	}
	s.HTTP = httptest.NewServer(h)
	s.URL = s.HTTP.URL
	tb.Cleanup(func() {
		if err := rs.Close(); err != nil {
			tb.Errorf("resttest: closing the REST server: %v", err)
		}
		s.HTTP.Close()
	})
	return s
}

// serve runs s.REST.Serve on a 127.0.0.1 listener until tb ends.
func (s *Server) serve(tb testing.TB) {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("resttest: listen: %v", err)
	}
	s.URL = "http://" + ln.Addr().String()
	served := make(chan error, 1)
	go func() { served <- s.REST.Serve(ln) }()
	tb.Cleanup(func() {
		if err := s.REST.Close(); err != nil {
			tb.Errorf("resttest: closing the REST server: %v", err)
		}
		select {
		case err := <-served:
			if err != nil {
				tb.Errorf("resttest: Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			tb.Error("resttest: Serve did not return after Close")
		}
	})
}
