package restserver

import (
	"context"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// connLimiter bounds the connections [Server.Serve] holds open. At the
// limit, a new connection makes room by closing the idle connection that
// has been idle longest among those that never authenticated, else among
// the others; when every connection is busy, the new one is answered 503
// with Retry-After and closed. So clients without credentials holding
// connections open cannot lock out clients with them.
type connLimiter struct {
	max int

	mu    sync.Mutex
	conns map[net.Conn]*connInfo
}

// connInfo is what the limiter knows of one connection.
type connInfo struct {
	conn   net.Conn
	authed atomic.Bool // some request on it passed authentication
	idle   bool        // new or between requests; guarded by connLimiter.mu
	since  time.Time   // when it last became idle; guarded by connLimiter.mu
}

type connInfoKey struct{}

func newConnLimiter(max int) *connLimiter {
	return &connLimiter{max: max, conns: make(map[net.Conn]*connInfo)}
}

// busyBody and busyResponse answer a connection refused at the limit.
const busyBody = `{"error":"too many connections: the server's connection limit is reached, retry later","status":503}`

var busyResponse = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n" +
	"Connection: close\r\nContent-Length: " + strconv.Itoa(len(busyBody)) + "\r\n\r\n" + busyBody

// admit registers c, making room if the limit is reached; false means c
// was refused (and answered and closed).
func (l *connLimiter) admit(c net.Conn) bool {
	l.mu.Lock()
	if len(l.conns) >= l.max {
		if victim := l.victimLocked(); victim != nil {
			delete(l.conns, victim.conn)
			_ = victim.conn.Close()
		} else {
			l.mu.Unlock()
			_ = c.SetWriteDeadline(time.Now().Add(time.Second))
			_, _ = c.Write([]byte(busyResponse))
			_ = c.Close()
			return false
		}
	}
	l.conns[c] = &connInfo{conn: c, idle: true, since: time.Now()}
	l.mu.Unlock()
	return true
}

// victimLocked picks the connection to close for room: the longest idle
// unauthenticated one, else the longest idle one; nil if none is idle.
func (l *connLimiter) victimLocked() *connInfo {
	var anon, any *connInfo
	for _, ci := range l.conns {
		if !ci.idle {
			continue
		}
		if !ci.authed.Load() && (anon == nil || ci.since.Before(anon.since)) {
			anon = ci
		}
		if any == nil || ci.since.Before(any.since) {
			any = ci
		}
	}
	if anon != nil {
		return anon
	}
	return any
}

// connState is the http.Server's ConnState hook.
func (l *connLimiter) connState(c net.Conn, st http.ConnState) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ci := l.conns[c]
	if ci == nil {
		return
	}
	switch st {
	case http.StateActive:
		ci.idle = false
	case http.StateIdle:
		ci.idle, ci.since = true, time.Now()
	case http.StateClosed, http.StateHijacked:
		delete(l.conns, c)
	}
}

// connContext is the http.Server's ConnContext hook: requests find their
// connection's info, to mark it authenticated.
func (l *connLimiter) connContext(ctx context.Context, c net.Conn) context.Context {
	l.mu.Lock()
	ci := l.conns[c]
	l.mu.Unlock()
	if ci == nil {
		return ctx
	}
	return context.WithValue(ctx, connInfoKey{}, ci)
}

// markAuthenticated notes that r's connection carried an authenticated
// request.
func markAuthenticated(r *http.Request) {
	if ci, ok := r.Context().Value(connInfoKey{}).(*connInfo); ok {
		ci.authed.Store(true)
	}
}

// limitListener admits each accepted connection through a connLimiter.
type limitListener struct {
	net.Listener
	l *connLimiter
}

func (ln limitListener) Accept() (net.Conn, error) {
	for {
		c, err := ln.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if ln.l.admit(c) {
			return c, nil
		}
	}
}
