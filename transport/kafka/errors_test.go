package kafka_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/kafka"
)

func TestOptionsValidated(t *testing.T) {
	ok := kafka.Brokers("127.0.0.1:1")
	for name, opts := range map[string][]kafka.Option{
		"no brokers":          nil,
		"bad broker":          {kafka.Brokers("nohost")},
		"bad port":            {kafka.Brokers("h:99999")},
		"brokers and config":  {ok, kafka.WithConfig(kafka.Config{Brokers: []string{"h:1"}})},
		"negative linger":     {ok, kafka.ProducerLinger(-1)},
		"zero setup timeout":  {ok, kafka.SetupTimeout(0)},
		"zero partitions":     {ok, kafka.AutoCreateTopics(0, 1)},
		"zero replication":    {ok, kafka.AutoCreateTopics(1, 0)},
		"zero message bytes":  {ok, kafka.MaxMessageBytes(0)},
		"short session":       {ok, kafka.SessionTimeout(time.Millisecond)},
		"zero heartbeat":      {ok, kafka.HeartbeatInterval(0)},
		"zero max poll":       {ok, kafka.MaxPollInterval(0)},
		"zero poll window":    {ok, kafka.PollWindow(0)},
		"zero poll records":   {ok, kafka.MaxPollRecords(0)},
		"sasl without a user": {kafka.WithConfig(kafka.Config{Brokers: []string{"h:1"}, SASLMechanism: "PLAIN"})},
		"unknown sasl":        {kafka.WithConfig(kafka.Config{Brokers: []string{"h:1"}, SASLMechanism: "GSSAPI", SASLUsername: "u"})},
	} {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			tr, err := kafka.New(opts...)
			require.Error(t, err)
			require.Nil(t, tr)
			assert.Less(t, time.Since(start), time.Second, "validation contacts no broker")
			assert.True(t, strings.HasPrefix(err.Error(), "kafka: "), "error %q names the package", err)
		})
	}
}

// Unreachable brokers fail New within its SetupTimeout: a refused port at
// once, a listener that accepts and never answers at the timeout.
func TestUnreachableBrokers(t *testing.T) {
	refused, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	refusedAddr := refused.Addr().String()
	require.NoError(t, refused.Close())

	silent, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer silent.Close()
	var (
		mu    sync.Mutex
		conns []net.Conn
	)
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c) // held open, never answered
			mu.Unlock()
		}
	}()
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	}()

	for name, addr := range map[string]string{"refused": refusedAddr, "silent": silent.Addr().String()} {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			tr, err := kafka.New(kafka.Brokers(addr), kafka.SetupTimeout(700*time.Millisecond))
			took := time.Since(start)
			require.Error(t, err)
			require.Nil(t, tr)
			assert.Contains(t, err.Error(), "cannot reach brokers "+addr)
			assert.Less(t, took, 3*time.Second, "New returned after %v", took)
			// "within" the setup timeout only when it was waited out: a
			// refused port fails at once, and said "within 700ms".
			if name == "refused" && took < 700*time.Millisecond {
				assert.NotContains(t, err.Error(), "within")
			}
			if name == "silent" {
				assert.Contains(t, err.Error(), "within 700ms")
			}
			t.Logf("%s after %v: %v", name, took.Round(time.Millisecond), err)
		})
	}
}

// Wrong SASL credentials: a clear error wrapping ErrUnauthenticated, which
// does not carry the password. kfake drops the connection on a bad
// password, where Apache Kafka answers SASL_AUTHENTICATION_FAILED: the
// control hook answers as Apache Kafka does; without it the error is still
// prompt and password-free.
func TestWrongSASLCredentials(t *testing.T) {
	c := newFake(t, kfake.EnableSASL(), kfake.Superuser("PLAIN", "admin", "right-secret"))
	const password = "wrong-secret-3141"
	cfg := kafka.Config{Brokers: c.ListenAddrs(), SASLMechanism: kafka.SASLPlain, SASLUsername: "admin", SASLPassword: password}
	var asApache atomic.Bool
	asApache.Store(true)
	c.ControlKey(int16(kmsg.SASLAuthenticate), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if !asApache.Load() || !strings.Contains(string(req.(*kmsg.SASLAuthenticateRequest).SASLAuthBytes), password) {
			return nil, nil, false
		}
		resp := req.ResponseKind().(*kmsg.SASLAuthenticateResponse)
		resp.ErrorCode = kerr.SaslAuthenticationFailed.Code
		msg := "Authentication failed: Invalid username or password"
		resp.ErrorMessage = &msg
		return resp, nil, true
	})
	t.Run("AsApacheKafka", func(t *testing.T) {
		defer asApache.Store(false)
		start := time.Now()
		tr, err := kafka.New(kafka.WithConfig(cfg), kafka.SetupTimeout(5*time.Second))
		require.Error(t, err)
		require.Nil(t, tr)
		require.ErrorIs(t, err, transport.ErrUnauthenticated)
		assert.NotContains(t, err.Error(), password)
		assert.Less(t, time.Since(start), 5*time.Second)
		t.Logf("error: %v", err)
	})
	t.Run("KfakeDropsTheConnection", func(t *testing.T) {
		start := time.Now()
		tr, err := kafka.New(kafka.WithConfig(cfg), kafka.SetupTimeout(2*time.Second))
		require.Error(t, err)
		require.Nil(t, tr)
		assert.NotContains(t, err.Error(), password)
		assert.Less(t, time.Since(start), 3*time.Second)
		t.Logf("error: %v", err)
	})
	t.Run("RightCredentials", func(t *testing.T) {
		cfg := cfg
		cfg.SASLPassword = "right-secret"
		good, err := kafka.New(kafka.WithConfig(cfg))
		require.NoError(t, err)
		require.NoError(t, good.Close())
	})
}

// Without AutoCreateTopics a missing topic is refused fast and clearly by
// Produce, Subscribe and Tail; nothing is created.
func TestUnknownTopicFast(t *testing.T) {
	brokers := cluster(t)
	tr, err := kafka.New(kafka.Brokers(brokers...))
	require.NoError(t, err)
	defer tr.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	topic := "missing-" + time.Now().Format("150405.000000")
	check := func(what string, err error, start time.Time) {
		t.Helper()
		require.ErrorIs(t, err, transport.ErrUnknownTopic, what)
		assert.Contains(t, err.Error(), topic, what)
		assert.Less(t, time.Since(start), time.Second, "%s took %v", what, time.Since(start))
	}
	start := time.Now()
	_, err = tr.Produce(ctx, transport.Message{Topic: topic, Value: []byte("x")})
	check("Produce", err, start)
	start = time.Now()
	_, err = tr.Subscribe(ctx, transport.Subscription{Group: "g", Topics: []string{topic}})
	check("Subscribe", err, start)
	start = time.Now()
	_, err = tr.Tail(ctx, topic)
	check("Tail", err, start)
	start = time.Now()
	_, err = tr.Produce(ctx, transport.Message{Topic: topic, Value: []byte("x")})
	check("Produce again (not created meanwhile)", err, start)
}

// A produce whose deadline passes while its request is held by the broker
// returns at the deadline with ErrOutcomeUnknown; the idempotent producer
// then finishes the request in the background, and the record is written
// exactly once.
func TestProduceDeadlineOnTheWire(t *testing.T) {
	c := newFake(t)
	tr := newTransport(t, c.ListenAddrs())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	topic := "deadline-" + time.Now().Format("150405.000000")
	_, err := tr.Produce(ctx, transport.Message{Topic: topic, Value: []byte("warm-up"), Partition: 0, ManualPartition: true})
	require.NoError(t, err)

	release := make(chan struct{})
	held := make(chan struct{}, 1)
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		held <- struct{}{}
		c.SleepControl(func() { <-release })
		return nil, nil, false // then let the broker handle it
	})
	dctx, dcancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer dcancel()
	start := time.Now()
	_, err = tr.Produce(dctx, transport.Message{Topic: topic, Value: []byte("held"), Partition: 0, ManualPartition: true})
	took := time.Since(start)
	require.ErrorIs(t, err, transport.ErrOutcomeUnknown)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Less(t, took, 2*time.Second, "Produce returned %v after its deadline", took)
	<-held
	close(release)

	raw, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}))
	require.NoError(t, err)
	defer raw.Close()
	var values []string
	for len(values) < 2 && ctx.Err() == nil {
		pctx, pcancel := context.WithTimeout(ctx, time.Second)
		raw.PollFetches(pctx).EachRecord(func(r *kgo.Record) { values = append(values, string(r.Value)) })
		pcancel()
	}
	pctx, pcancel := context.WithTimeout(ctx, 300*time.Millisecond)
	raw.PollFetches(pctx).EachRecord(func(r *kgo.Record) { values = append(values, string(r.Value)) })
	pcancel()
	require.Equal(t, []string{"warm-up", "held"}, values, "the held record is written once")
}

// Closed transports and consumers answer with ErrClosed.
func TestUseAfterClose(t *testing.T) {
	tr := newTransport(t, cluster(t))
	require.NoError(t, tr.Close())
	require.NoError(t, tr.Close())
	_, err := tr.Produce(context.Background(), transport.Message{Topic: "t", Value: []byte("x")})
	require.True(t, errors.Is(err, transport.ErrClosed), "%v", err)
	_, err = tr.Subscribe(context.Background(), transport.Subscription{Group: "g", Topics: []string{"t"}})
	require.ErrorIs(t, err, transport.ErrClosed)
	_, err = tr.Tail(context.Background(), "t")
	require.ErrorIs(t, err, transport.ErrClosed)
}
