// Package resttest is test support for the project's REST server
// (package restserver) and its clients: it starts a REST server over an
// embedded broker on a loopback port ([Start]), and wraps any http.Handler
// in a handler that misbehaves on purpose ([NewFaultHandler]), so that
// clients' retries and the rpc layer's recovery can be tested against a real
// HTTP peer.
//
// Nothing here belongs in production: the fault handler drops connections
// and loses responses by design.
package resttest
