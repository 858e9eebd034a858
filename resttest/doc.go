// Package resttest is test support for the project's REST server (package
// restserver) and its clients, such as transport/upstash.
//
// [Start] starts a REST server over a new embedded broker
// (transport/memory) on a 127.0.0.1 port and closes everything when the
// test ends. By default the broker has memory.New's defaults, the server
// has restserver.New's defaults with a logger that discards and no
// credentials (authentication off), and it is served by an
// httptest.Server; [Config] changes each of these.
//
// [FaultHandler] wraps any http.Handler and misbehaves on purpose at the
// rates of its [Faults]: it answers 503, stalls, drops the connection
// before handling, or handles the request and then drops the connection so
// that the response is lost. It lets clients' retries and the rpc layer's
// recovery be tested against a real HTTP peer. [Start] puts one in front of
// the server when Config.Faults is set.
//
// Everything here is safe for concurrent use by the requests of a test and
// its goroutines; Start itself must be called from the test's goroutine,
// as testing.TB requires of Fatal. Nothing here belongs in production: the
// fault handler drops connections and loses responses by design.
package resttest
