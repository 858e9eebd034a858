package transport

import "context"

// CarryingPoller is an optional Consumer capability: a Poll that first
// produces records, in the same exchange with the system behind the
// transport when it can (the project's REST server takes them with the
// consume request, so a member that replies to what it reads spends one
// HTTP exchange where it would spend two). The rpc server uses it to send
// its replies and dedup markers with its next poll. Discover it with a type
// assertion on a Consumer.
type CarryingPoller interface {
	// PollCarrying produces msgs exactly as Transport.Produce on the
	// consumer's transport would (same validation, all or nothing, the
	// same errors: ErrInvalid, ErrUnknownTopic, ErrMessageTooLarge,
	// ErrPermissionDenied..., and ErrOutcomeUnknown when the transport
	// cannot tell whether they were written), then polls as Poll does.
	//
	// acked, which must not be nil, is called exactly once with the
	// produce's outcome (the records as Produce would return them, or the
	// error) as soon as that outcome is known: before PollCarrying waits
	// for records, and before PollCarrying returns unless it returns
	// because ctx ended (then acked may come later, still exactly once).
	// It may be called from another goroutine; it must return quickly and
	// must not call the consumer's methods. With no msgs, acked is called
	// with an empty result and nil at once, and PollCarrying is Poll.
	//
	// If the produce fails, nothing is polled: PollCarrying returns the
	// produce's error (the one acked got, possibly wrapped). An unknown
	// outcome is not a failure here: when the records were sent and the
	// transport cannot tell whether they were written (acked got
	// ErrOutcomeUnknown), the poll part's result is returned as it came,
	// records included. If ctx ended
	// before the records were sent, nothing is produced and acked gets the
	// context's error. If ctx ends after they were sent, acked still gets
	// the produce's real outcome once it is known (a transport that cannot
	// learn it gives ErrOutcomeUnknown), and the poll part behaves as a
	// canceled Poll: it returns ctx.Err() and loses no records. After the
	// consumer's Close, or once it is fenced, nothing is produced: acked
	// and PollCarrying get the error Poll returns (ErrClosed, ErrFenced).
	//
	// The poll part's rules are Poll's: an error means no records were
	// taken. The transport reads msgs until it calls acked and never
	// changes them; the caller may reuse them after that.
	PollCarrying(ctx context.Context, msgs []Message, acked func(written []Message, err error)) ([]Message, error)
}

// CarryLimiter is an optional capability of a CarryingPoller whose
// requests carry only so many records at a time (transport/upstash: the
// answer to the records travels in a response header, which proxies cap).
// CarryFits reports whether msgs can ride on one PollCarrying; a
// PollCarrying given more produces them all first, on their own, before it
// polls. A caller that gathers records from several producers for one poll
// (the rpc server) keeps the batch within it and lets the rest be produced
// on their own, at the same time. Safe for concurrent use; it must return
// quickly.
type CarryLimiter interface {
	CarryFits(msgs []Message) bool
}
