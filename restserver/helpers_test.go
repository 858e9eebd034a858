package restserver_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/kafkarpc/kafkarpc/internal/restwire"
	"github.com/kafkarpc/kafkarpc/restserver"
	"github.com/kafkarpc/kafkarpc/restserver/kafkabackend"
	"github.com/kafkarpc/kafkarpc/restserver/kafkabackend/kafkatest"
	"github.com/kafkarpc/kafkarpc/resttest"
	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// The tests that start their server with newEnv run over the embedded
// broker, or, with KAFKARPC_REST_BACKEND=kfake, over the Kafka backend
// (restserver/kafkabackend) in front of an in-process kfake cluster, reached
// through the Kafka protocol. A test whose promise cannot hold on Kafka
// says so with kafkaDiffers, which skips it there naming the difference.
var restBackend = os.Getenv("KAFKARPC_REST_BACKEND")

func onKafka() bool { return restBackend == "kfake" }

// kafkaDiffers skips t on the Kafka backend, as a declared feature
// difference (visible in go test -v output and in the skip count).
func kafkaDiffers(t testing.TB, why string) {
	t.Helper()
	if onKafka() {
		t.Skipf("feature difference of the Kafka backend: %s", why)
	}
}

// kafkaBackendFor starts kfake with the topics the embedded broker would
// have with opts, and auto-creation (with its partition count) if that
// broker would auto-create.
func kafkaBackendFor(tb testing.TB, opts []memory.Option) *kafkatest.Cluster {
	tb.Helper()
	mb, err := memory.New(opts...)
	require.NoError(tb, err)
	defer mb.Close()
	topics := map[string]int32{}
	for t, n := range mb.Topics() {
		topics[t] = int32(n)
	}
	var bopts []kafkabackend.Option
	const probe = "kafkatest-probe"
	if _, err := mb.Produce(context.Background(), transport.Message{Topic: probe, Value: []byte("x")}); err == nil {
		bopts = append(bopts, kafkabackend.WithAutoCreateTopics(int32(mb.Topics()[probe])))
	}
	return kafkatest.Start(tb, kafkatest.Config{Topics: topics, Backend: bopts})
}

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	testUser = "ZXhjaXRpbmctbW9sZS0xMjM0JN"
	testPass = "OWI1ODczc2VjcmV0LXBhc3N3b3Jk"
)

// env is a REST server over an embedded broker, served on loopback.
type env struct {
	t       testing.TB
	broker  *memory.Broker     // nil on the Kafka backend
	kafka   *kafkatest.Cluster // nil on the embedded broker
	backend restserver.Backend
	srv     *restserver.Server
	url     string
	client  *http.Client
}

type envConfig struct {
	broker []memory.Option
	server []restserver.Option
	noAuth bool
	wrap   func(restserver.Backend) restserver.Backend
}

// newEnv starts a server with credentials testUser/testPass (unless noAuth),
// a discarding logger, and the given broker and server options.
func newEnv(t testing.TB, c envConfig) *env {
	t.Helper()
	var opts []restserver.Option
	if !c.noAuth {
		opts = append(opts, restserver.WithCredentials(testUser, testPass))
	}
	rc := resttest.Config{Broker: c.broker, Server: append(opts, c.server...), Backend: c.wrap}
	var kc *kafkatest.Cluster
	if onKafka() {
		rc.NewBackend = func(tb testing.TB) restserver.Backend {
			kc = kafkaBackendFor(tb, c.broker)
			return kc.Backend
		}
	}
	s := resttest.Start(t, rc)
	e := &env{t: t, broker: s.Broker, kafka: kc, srv: s.REST, url: s.URL, client: s.HTTP.Client()}
	if kc != nil {
		e.backend = kc.Backend
	} else {
		e.backend = restserver.NewMemoryBackend(s.Broker)
	}
	return e
}

// createTopic creates a topic on whichever backend e runs.
func (e *env) createTopic(name string, partitions int) {
	e.t.Helper()
	if e.kafka != nil {
		e.kafka.CreateTopic(e.t, name, int32(partitions))
		return
	}
	require.NoError(e.t, e.broker.CreateTopic(name, partitions))
}

// topics lists the backend's topics.
func (e *env) topics() map[string]int32 {
	e.t.Helper()
	ts, err := e.backend.Topics(context.Background())
	require.NoError(e.t, err)
	return ts
}

// reply is an HTTP response, read whole.
type reply struct {
	status int
	header http.Header
	body   string
}

// req sends method path with body (none if ""), Basic auth with the test
// credentials unless an Authorization header is in hdr ("-" removes it), and
// the other headers of hdr (pairs).
func (e *env) req(method, path, body string, hdr ...string) reply {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	r, err := http.NewRequestWithContext(ctx, method, e.url+path, rd)
	require.NoError(e.t, err)
	r.SetBasicAuth(testUser, testPass)
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Authorization" && hdr[i+1] == "-" {
			r.Header.Del("Authorization")
			continue
		}
		r.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := e.client.Do(r)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(e.t, err)
	return reply{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

// ok sends a request that must succeed with 200 and JSON, and returns the
// body.
func (e *env) ok(method, path, body string, hdr ...string) string {
	e.t.Helper()
	r := e.req(method, path, body, hdr...)
	require.Equal(e.t, http.StatusOK, r.status, "%s %s: %s", method, path, r.body)
	require.Equal(e.t, "application/json", r.header.Get("Content-Type"))
	return r.body
}

// decode decodes JSON into a T.
func decode[T any](t testing.TB, s string) T {
	t.Helper()
	var v T
	require.NoError(t, json.Unmarshal([]byte(s), &v), "body: %s", s)
	return v
}

// Wire types as a client sees them: the shared wire shapes.
type (
	metadata = restwire.Metadata
	header   = restwire.Header
	consumed = restwire.ConsumedMessage
)

// tpo is a TopicPartitionOffset of an answer, where every field is present.
type tpo struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
}

type groupAssignments struct {
	Name      string `json:"name"`
	Instances []struct {
		Name   string `json:"name"`
		Topics []struct {
			Topic      string  `json:"topic"`
			Partitions []int32 `json:"partitions"`
		} `json:"topics"`
	} `json:"instances"`
}

// requireErrorBody checks r is the JSON error {"error": "...", "status": N}
// with exactly those two fields, and returns the message.
func requireErrorBody(t testing.TB, r reply, status int) string {
	t.Helper()
	require.Equal(t, status, r.status, "body: %s", r.body)
	require.Equal(t, "application/json", r.header.Get("Content-Type"))
	var m map[string]any
	require.NoError(t, json.Unmarshal([]byte(r.body), &m), "body: %s", r.body)
	require.Len(t, m, 2, "body: %s", r.body)
	require.Equal(t, float64(status), m["status"], "body: %s", r.body)
	msg, ok := m["error"].(string)
	require.True(t, ok, "body: %s", r.body)
	require.NotEmpty(t, msg)
	return msg
}

// latest returns the offset the next record of the partition will get.
func (e *env) latest(topic string, partition int32) int64 {
	e.t.Helper()
	_, latest, err := e.backend.Offsets(context.Background(), transport.TopicPartition{Topic: topic, Partition: partition})
	require.NoError(e.t, err)
	return latest
}
