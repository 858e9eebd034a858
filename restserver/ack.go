package restserver

import (
	"net/http"
	"slices"

	"github.com/kafkarpc/kafkarpc/internal/restwire"
	"github.com/kafkarpc/kafkarpc/transport"
)

// AckHeader is the consume request header of acknowledged answers (an
// extension of this server).
//
// With the plain API, a consume moves its instance's position past the
// records it answers before the client has read them. An answer lost on
// its way (a connection reset, a proxy that cuts the body) is then lost
// for good: the next consume goes on after it, and the client's next
// commit of later records passes it. A client that sends AckHeader on
// every consume says which answer it last read whole: "-" before any, then
// the token of that answer's records (its last record's partition and
// offset, its record count and a hash of every record's topic, partition
// and offset, as kafkarpc's REST transport makes it: a token of the last
// record alone would, after a rewind, acknowledge a later answer that ends
// with the same record). The server keeps
// the instance's last answer with records until a consume acknowledges it;
// a consume that does not (its client never read that answer whole) is
// answered with the same records again, those of them in partitions the
// instance still owns, before anything new. Consumes without the header
// are served as the plain API says, so the Upstash SDKs see no change.
//
// The records kept are not held back from commits: a commit of the
// positions (an empty /commit body, auto-commit) passes them as the plain
// API does, which is why kafkarpc's REST transport commits offsets it
// handled and never positions. Records a commit of the group passed (this
// instance's, or another's that owned their partition meanwhile) are not
// sent again.
const AckHeader = restwire.AckHeader

// unacked is the last consume answer with records of an instance whose
// client acknowledges answers (AckHeader), until it does. It is read and
// written only under the instance's pollSem.
type unacked struct {
	member Member              // that answered them: another member's positions are its own
	msgs   []transport.Message // none: nothing is kept
}

// acknowledges says ack acknowledges u's records.
func (u *unacked) acknowledges(ack string) bool {
	var buf [64]byte
	return ack == string(restwire.AppendAckToken(buf[:0], u.msgs))
}

// ackOf returns r's AckHeader value, and whether it has one.
func ackOf(r *http.Request) (string, bool) {
	v := r.Header[AckHeader]
	if len(v) == 0 {
		return "", false
	}
	return v[0], true
}

// resend returns the records of in's last answer when ack does not
// acknowledge it: those of them in partitions m still owns, at or after
// the group's committed offset. Otherwise (or when none of them is left to
// send) it forgets that answer and returns nil. Called with in.pollSem
// held.
//
// A record before the committed offset was handled and committed by
// another member meanwhile (its partition moved there and back; this
// member's position was reset to that offset): the plain API would not
// read it again, and sending it again would run it twice and, as the
// client commits what it handles, move the group's committed offset back
// (TestBreak13CutAnswerCommittedByTheNextOwnerIsNotSentAgain). The
// committed offsets are looked up only when an answer goes again, those of
// all its partitions in one call (committedOf).
func (s *Server) resend(r *http.Request, in *instance, m Member, ack string) []transport.Message {
	last := in.unacked
	if last.msgs == nil {
		return nil
	}
	if last.member != m || last.acknowledges(ack) {
		in.unacked = unacked{}
		return nil
	}
	owned := m.Assignment()
	committed := map[transport.TopicPartition]int64{}
	var tps []transport.TopicPartition
	for _, msg := range last.msgs {
		tp := transport.TopicPartition{Topic: msg.Topic, Partition: msg.Partition}
		if _, ok := committed[tp]; !ok && slices.Contains(owned[msg.Topic], msg.Partition) {
			committed[tp] = -1 // unknown: sent again, a duplicate at worst
			tps = append(tps, tp)
		}
	}
	if len(tps) > 0 {
		ctx, cancel := s.requestContext(r, s.cfg.maxTimeout)
		offs, err := s.committedOf(ctx, in.key.group, tps)
		cancel()
		if err != nil {
			s.log.Warn("kafka-rest: committed offsets unknown for an answer sent again", "group", in.key.group, "instance", in.key.name, "partitions", len(tps), "err", err)
		}
		for i, off := range offs {
			committed[tps[i]] = off
		}
	}
	msgs := make([]transport.Message, 0, len(last.msgs))
	for _, msg := range last.msgs {
		off, ok := committed[transport.TopicPartition{Topic: msg.Topic, Partition: msg.Partition}]
		if ok && msg.Offset >= off {
			msgs = append(msgs, msg)
		}
	}
	if len(msgs) == 0 {
		in.unacked = unacked{}
		return nil
	}
	if len(msgs) < len(last.msgs) {
		in.keepUnacked(m, msgs)
	}
	return msgs
}

// keepUnacked keeps msgs, which m answered, until a consume acknowledges
// them. Called with in.pollSem held.
func (in *instance) keepUnacked(m Member, msgs []transport.Message) {
	in.unacked = unacked{member: m, msgs: msgs}
}
