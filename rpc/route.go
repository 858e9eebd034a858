package rpc

import (
	"context"
	"fmt"
	"strings"
)

// Handle registers a typed handler for route ("topic" or "topic/method").
// The request payload is decoded into Req (a payload that does not decode is
// answered with CodeInvalidArgument without calling fn) and the result is
// encoded as JSON. It panics if fn is nil or the route is taken.
func Handle[Req, Resp any](s *Server, route string, fn func(ctx context.Context, req Req) (Resp, error)) {
	if fn == nil {
		panic("rpc: Handle " + route + ": nil handler")
	}
	s.HandleFunc(route, func(ctx context.Context, r *Request) (any, error) {
		// decodeTyped is r.Decode(&in) without in escaping to the heap.
		in, err := decodeTyped[Req](r.Value)
		if err != nil {
			return nil, r.decodeErr(err)
		}
		return fn(ctx, in)
	})
}

// HandleFunc registers fn for route ("topic" or "topic/method"). It panics
// if fn is nil, the route is malformed or taken, or the server is serving.
func (s *Server) HandleFunc(route string, fn HandlerFunc) {
	if fn == nil {
		panic("rpc: HandleFunc " + route + ": nil handler")
	}
	topic, method, _ := strings.Cut(route, "/")
	if topic == "" || strings.Contains(method, "/") {
		panic(fmt.Sprintf("rpc: HandleFunc: malformed route %q, want \"topic\" or \"topic/method\"", route))
	}
	s.register(s.routes, route, topic, fn)
}

// HandleLegacy registers fn for records without rpc-* headers whose key is
// key and topic is topic: the match("producer:topic") routing of the Laravel article's PHP consumer, for
// interop with producers that do not speak the envelope. Such records get no
// reply. It panics as HandleFunc does.
func (s *Server) HandleLegacy(key, topic string, fn HandlerFunc) {
	if fn == nil {
		panic("rpc: HandleLegacy " + key + ":" + topic + ": nil handler")
	}
	if topic == "" {
		panic("rpc: HandleLegacy: empty topic")
	}
	s.register(s.legacy, key+":"+topic, topic, fn)
}

// HandleUnhandled sets the fallback for records no route matches (the Laravel article's
// UnhandledKafkaEvent). A request with a reply-to is still answered with
// CodeUnimplemented after fn returns. Without a fallback such records are
// logged at Warn. It panics if the server is serving.
func (s *Server) HandleUnhandled(fn func(ctx context.Context, r *Request) error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.serving {
		panic("rpc: HandleUnhandled called while serving")
	}
	s.unhandled = fn
}

func (s *Server) register(m map[string]HandlerFunc, key, topic string, fn HandlerFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.serving {
		panic("rpc: route " + key + " registered while serving")
	}
	if _, dup := m[key]; dup {
		panic("rpc: route " + key + " registered twice")
	}
	h := recoverHandler(s.log, fn)
	for i := len(s.cfg.middleware) - 1; i >= 0; i-- {
		h = s.cfg.middleware[i](h)
	}
	if len(s.cfg.middleware) > 0 {
		h = recoverHandler(s.log, h) // a panicking middleware is a bad request too
	}
	m[key] = h
	s.topics[topic] = struct{}{}
}

// route is the pipeline's second stage: it finds the handler of an
// admitted delivery, by "key:topic" for a legacy record and otherwise by
// "topic/method", falling back to "topic". d.h stays nil when no route
// matches.
func (r *serveRun) route(d *delivery) {
	s := r.s
	if d.legacy {
		d.req.From = d.req.Key
		d.h = s.legacy[d.req.Key+":"+d.req.Topic]
		return
	}
	if d.req.Method != "" {
		d.h = s.routes[d.req.Topic+"/"+d.req.Method]
	}
	if d.h == nil {
		d.h = s.routes[d.req.Topic]
	}
}

// unhandled runs the fallback for a record no route matches, reporting
// whether there was one.
func (r *serveRun) unhandled(ctx context.Context, req *Request) bool {
	r.s.mu.Lock()
	fn := r.s.unhandled
	r.s.mu.Unlock()
	if fn == nil {
		return false
	}
	func() {
		defer func() {
			if p := recover(); p != nil {
				r.s.log.Error("rpc: unhandled-record handler panicked", "panic", fmt.Sprint(p))
			}
		}()
		if err := fn(ctx, req); err != nil {
			r.s.log.Warn("rpc: unhandled-record handler failed", "topic", req.Topic, "err", err)
		}
	}()
	return true
}

func routeName(topic, method string) string {
	if method == "" {
		return topic
	}
	return topic + "/" + method
}
