package rpc

import (
	"context"
	"encoding/json"

	"github.com/kafkarpc/kafkarpc/transport"
)

// ownedProducer is implemented by a transport that can take records over
// instead of copying them, as memory.Broker.ProduceOwned does: the caller
// promises never to change the records' Value and Headers again, and the
// transport stores them as they are and fills msgs in place.
//
// Client and Server hand over only records they built themselves from
// memory nobody else holds (headers built per record, a payload encoded by
// json.Marshal), and never change them afterwards: a resend copies the
// headers before it rewrites the timeout. A payload given as []byte or
// json.RawMessage belongs to the caller (or the handler), who may reuse it,
// so its record is produced with Produce, which copies.
type ownedProducer interface {
	ProduceOwned(ctx context.Context, msgs ...transport.Message) ([]transport.Message, error)
}

// producer is a transport and, when it has one, its ProduceOwned.
type producer struct {
	t   transport.Transport
	own ownedProducer // nil when t has no ProduceOwned
}

func newProducer(t transport.Transport) producer {
	p := producer{t: t}
	p.own, _ = t.(ownedProducer)
	return p
}

// produce writes msgs through ProduceOwned when owned says they may be
// handed over and the transport can take them, else through Produce.
func (p *producer) produce(ctx context.Context, owned bool, msgs ...transport.Message) ([]transport.Message, error) {
	if owned && p.own != nil {
		return p.own.ProduceOwned(ctx, msgs...)
	}
	return p.t.Produce(ctx, msgs...)
}

// callerOwned reports whether v is a payload that marshalPayload passes
// through as it is: memory its caller keeps, which must be copied.
func callerOwned(v any) bool {
	switch v.(type) {
	case json.RawMessage, []byte:
		return true
	}
	return false
}
