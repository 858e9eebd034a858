package rpctest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kafkarpc/kafkarpc/transport"
)

// ErrInjected is wrapped by the errors a FaultyTransport makes up.
var ErrInjected = errors.New("rpctest: injected fault")

// Faults sets the rate (0 to 1) of each fault a FaultyTransport injects.
// The zero value injects nothing.
type Faults struct {
	// Seed makes a run repeatable; zero means 1.
	Seed uint64

	// ProduceFail: Produce returns an error and writes nothing.
	ProduceFail float64
	// ProduceLost: Produce writes, then returns an error, as when the
	// response is lost: a retry writes the records twice.
	ProduceLost float64
	// ProduceDuplicate: Produce writes every record twice.
	ProduceDuplicate float64
	// ProduceReorder: Produce writes a batch in reverse order.
	ProduceReorder float64
	// ProduceDelay: Produce waits up to MaxDelay first.
	ProduceDelay float64

	// PollFail: Poll returns an error and reads nothing.
	PollFail float64
	// PollDrop: Poll reads records and loses them, as when a consume
	// response is lost: the member's position moved past them.
	PollDrop float64
	// PollDuplicate: Poll returns each record of the batch twice.
	PollDuplicate float64
	// PollReorder: Poll returns the batch shuffled.
	PollReorder float64
	// PollDelay: Poll waits up to MaxDelay before returning its records.
	PollDelay float64

	// MaxDelay bounds injected delays. Zero means 5ms.
	MaxDelay time.Duration

	// AbandonOnClose makes Consumer.Close leave the member in its group
	// without leaving, as a crashed process does: its partitions move only
	// when the group drops it. A transport whose open members heartbeat by
	// themselves (the embedded broker, a REST instance inside kafka-rest)
	// drops it only after its max poll interval: set MaxPollInterval too.
	AbandonOnClose bool

	// MaxPollInterval, when not zero, is set as Subscription.MaxPollInterval
	// of every member whose subscription leaves it zero, so an abandoned
	// member that stops polling is dropped quickly.
	MaxPollInterval time.Duration
}

// FaultStats counts the faults a FaultyTransport injected.
type FaultStats struct {
	ProduceFail, ProduceLost, ProduceDuplicate, ProduceReorder, ProduceDelay int64
	PollFail, PollDrop, PollDuplicate, PollReorder, PollDelay                int64
}

// FaultyTransport wraps a transport and injects faults into Produce and
// Poll at the rates of its Faults. It implements transport.Tailer when the
// wrapped transport does. Safe for concurrent use.
type FaultyTransport struct {
	t transport.Transport
	f Faults

	mu  sync.Mutex
	rng *rand.Rand

	produceFail, produceLost, produceDup, produceReorder, produceDelay atomic.Int64
	pollFail, pollDrop, pollDup, pollReorder, pollDelay                atomic.Int64
	enabled                                                            atomic.Bool
}

// Faulty returns t with faults f injected. Faults start enabled.
func Faulty(t transport.Transport, f Faults) *FaultyTransport {
	if f.Seed == 0 {
		f.Seed = 1
	}
	if f.MaxDelay <= 0 {
		f.MaxDelay = 5 * time.Millisecond
	}
	ft := &FaultyTransport{t: t, f: f, rng: rand.New(rand.NewPCG(f.Seed, f.Seed^0x9e3779b97f4a7c15))}
	ft.enabled.Store(true)
	return ft
}

// SetEnabled turns injection on or off (AbandonOnClose stays in force).
func (ft *FaultyTransport) SetEnabled(on bool) { ft.enabled.Store(on) }

// Stats returns the counts of injected faults.
func (ft *FaultyTransport) Stats() FaultStats {
	return FaultStats{
		ProduceFail: ft.produceFail.Load(), ProduceLost: ft.produceLost.Load(), ProduceDuplicate: ft.produceDup.Load(),
		ProduceReorder: ft.produceReorder.Load(), ProduceDelay: ft.produceDelay.Load(),
		PollFail: ft.pollFail.Load(), PollDrop: ft.pollDrop.Load(), PollDuplicate: ft.pollDup.Load(),
		PollReorder: ft.pollReorder.Load(), PollDelay: ft.pollDelay.Load(),
	}
}

func (ft *FaultyTransport) hit(rate float64) bool {
	if rate <= 0 || !ft.enabled.Load() {
		return false
	}
	ft.mu.Lock()
	defer ft.mu.Unlock()
	return ft.rng.Float64() < rate
}

func (ft *FaultyTransport) delay(ctx context.Context) error {
	ft.mu.Lock()
	d := time.Duration(ft.rng.Int64N(int64(ft.f.MaxDelay)) + 1)
	ft.mu.Unlock()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (ft *FaultyTransport) shuffle(msgs []transport.Message) {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	ft.rng.Shuffle(len(msgs), func(i, j int) { msgs[i], msgs[j] = msgs[j], msgs[i] })
}

// Produce implements transport.Transport with produce faults.
func (ft *FaultyTransport) Produce(ctx context.Context, msgs ...transport.Message) ([]transport.Message, error) {
	if ft.hit(ft.f.ProduceDelay) {
		ft.produceDelay.Add(1)
		if err := ft.delay(ctx); err != nil {
			return nil, err
		}
	}
	if ft.hit(ft.f.ProduceFail) {
		ft.produceFail.Add(1)
		return nil, fmt.Errorf("produce: %w: broker unavailable", ErrInjected)
	}
	in := msgs
	reversed := len(msgs) > 1 && ft.hit(ft.f.ProduceReorder)
	if reversed {
		ft.produceReorder.Add(1)
		in = make([]transport.Message, len(msgs))
		for i := range msgs {
			in[len(msgs)-1-i] = msgs[i]
		}
	}
	if ft.hit(ft.f.ProduceDuplicate) {
		ft.produceDup.Add(1)
		in = append(append([]transport.Message(nil), in...), in...)
	}
	out, err := ft.t.Produce(ctx, in...)
	if err != nil {
		return nil, err
	}
	if ft.hit(ft.f.ProduceLost) {
		ft.produceLost.Add(1)
		return nil, fmt.Errorf("produce: %w: response lost", ErrInjected)
	}
	out = out[:len(msgs)] // the first copy, in the caller's order
	if reversed {
		slices.Reverse(out)
	}
	return out, nil
}

// Subscribe implements transport.Transport; the consumer has poll faults.
func (ft *FaultyTransport) Subscribe(ctx context.Context, s transport.Subscription) (transport.Consumer, error) {
	if s.MaxPollInterval == 0 {
		s.MaxPollInterval = ft.f.MaxPollInterval
	}
	c, err := ft.t.Subscribe(ctx, s)
	if err != nil {
		return nil, err
	}
	fc := &faultyConsumer{ft: ft, c: c}
	if cp, ok := c.(transport.CarryingPoller); ok {
		// The suites then run the rpc server's carried replies too.
		return &faultyCarryingConsumer{faultyConsumer: fc, cp: cp}, nil
	}
	return fc, nil
}

// Tail implements transport.Tailer when the wrapped transport does.
func (ft *FaultyTransport) Tail(ctx context.Context, topics ...string) (transport.Consumer, error) {
	tl, ok := ft.t.(transport.Tailer)
	if !ok {
		return nil, fmt.Errorf("rpctest: %T is not a transport.Tailer", ft.t)
	}
	c, err := tl.Tail(ctx, topics...)
	if err != nil {
		return nil, err
	}
	fc := &faultyConsumer{ft: ft, c: c, tail: true}
	if cp, ok := c.(transport.CarryingPoller); ok {
		// An rpc client's reply reader then carries its requests, faults
		// and all.
		return &faultyCarryingConsumer{faultyConsumer: fc, cp: cp}, nil
	}
	return fc, nil
}

// Close closes the wrapped transport.
func (ft *FaultyTransport) Close() error { return ft.t.Close() }

type faultyConsumer struct {
	ft   *FaultyTransport
	c    transport.Consumer
	tail bool
}

func (fc *faultyConsumer) Poll(ctx context.Context) ([]transport.Message, error) {
	ft := fc.ft
	if ft.hit(ft.f.PollFail) {
		ft.pollFail.Add(1)
		return nil, fmt.Errorf("poll: %w: broker unavailable", ErrInjected)
	}
	msgs, err := fc.c.Poll(ctx)
	return fc.afterPoll(ctx, msgs, err)
}

// faultyCarryingConsumer is a faultyConsumer of a consumer that implements
// transport.CarryingPoller: its PollCarrying has Poll's faults (PollFail
// fails it before anything is produced; the others apply to the records
// polled).
type faultyCarryingConsumer struct {
	*faultyConsumer
	cp transport.CarryingPoller
}

func (fc *faultyCarryingConsumer) PollCarrying(ctx context.Context, msgs []transport.Message, acked func([]transport.Message, error)) ([]transport.Message, error) {
	ft := fc.ft
	if len(msgs) > 0 && ft.hit(ft.f.PollFail) {
		ft.pollFail.Add(1)
		err := fmt.Errorf("poll: %w: broker unavailable", ErrInjected)
		acked(nil, err)
		return nil, err
	}
	got, err := fc.cp.PollCarrying(ctx, msgs, acked)
	return fc.afterPoll(ctx, got, err)
}

// afterPoll applies the poll faults but PollFail to what a poll returned.
func (fc *faultyConsumer) afterPoll(ctx context.Context, msgs []transport.Message, err error) ([]transport.Message, error) {
	ft := fc.ft
	if err != nil || len(msgs) == 0 {
		return msgs, err
	}
	if ft.hit(ft.f.PollDelay) {
		ft.pollDelay.Add(1)
		_ = ft.delay(context.WithoutCancel(ctx))
	}
	if ft.hit(ft.f.PollDrop) {
		ft.pollDrop.Add(1)
		return nil, fmt.Errorf("poll: %w: response lost", ErrInjected)
	}
	if ft.hit(ft.f.PollDuplicate) {
		ft.pollDup.Add(1)
		msgs = append(append([]transport.Message(nil), msgs...), msgs...)
	}
	if len(msgs) > 1 && ft.hit(ft.f.PollReorder) {
		ft.pollReorder.Add(1)
		msgs = append([]transport.Message(nil), msgs...)
		ft.shuffle(msgs)
	}
	return msgs, nil
}

func (fc *faultyConsumer) Commit(ctx context.Context, msgs ...transport.Message) error {
	return fc.c.Commit(ctx, msgs...)
}

func (fc *faultyConsumer) Close() error {
	if fc.ft.f.AbandonOnClose && !fc.tail {
		return nil
	}
	return fc.c.Close()
}
