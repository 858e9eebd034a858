package kafka_test

import (
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/kafka"
)

// Brokers that cannot be reached (a refused port, a listener that never
// answers) fail New with an error a caller can match:
// transport.ErrUnavailable, the sentinel the REST transport uses for the
// same case.
func TestBreak22KafkaUnreachableBrokersAreErrUnavailable(t *testing.T) {
	refused, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	refusedAddr := refused.Addr().String()
	require.NoError(t, refused.Close())

	silent, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer silent.Close()
	accepted := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			accepted <- c // held open, never answered
		}
	}()
	defer func() {
		for {
			select {
			case c := <-accepted:
				c.Close()
			default:
				return
			}
		}
	}()

	for name, addr := range map[string]string{"refused": refusedAddr, "silent": silent.Addr().String()} {
		t.Run(name, func(t *testing.T) {
			tr, err := kafka.New(kafka.Brokers(addr), kafka.SetupTimeout(500*time.Millisecond))
			require.Error(t, err)
			require.Nil(t, tr)
			assert.ErrorIs(t, err, transport.ErrUnavailable)
			assert.NotErrorIs(t, err, transport.ErrUnauthenticated)
		})
	}
}

// MissingTopics: without AutoCreateTopics, the topics the cluster lacks;
// with it, none, as asking creates them.
func TestBreak22KafkaMissingTopics(t *testing.T) {
	brokers := cluster(t)
	setup := newTransport(t, brokers)
	_, err := setup.Produce(t.Context(), transport.Message{Topic: "have22", Value: []byte("v")})
	require.NoError(t, err)

	tr, err := kafka.New(kafka.Brokers(brokers...))
	require.NoError(t, err)
	defer tr.Close()
	missing, err := tr.MissingTopics(t.Context(), "have22", "lack22", "lack22")
	require.NoError(t, err)
	assert.Equal(t, []string{"lack22"}, missing)

	missing, err = setup.MissingTopics(t.Context(), "made22")
	require.NoError(t, err)
	assert.Empty(t, missing)
	missing, err = tr.MissingTopics(t.Context(), "made22")
	require.NoError(t, err)
	assert.Empty(t, missing, "created by the first question")
}
