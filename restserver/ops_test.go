package restserver_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/internal/testutil"
	"github.com/kafkarpc/kafkarpc/restserver"
	"github.com/kafkarpc/kafkarpc/transport"
)

var noAuth = []string{"Authorization", "-"}

func TestHealthzNeedsNoCredentialsAndSaysNothingMore(t *testing.T) {
	e := newEnv(t, envConfig{})
	r := e.req("GET", "/healthz", "", noAuth...)
	assert.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, `{"status":"ok"}`, r.body)
	assert.Equal(t, "application/json", r.header.Get("Content-Type"))
	r = e.req("HEAD", "/healthz", "", noAuth...)
	assert.Equal(t, http.StatusOK, r.status)
	assert.Empty(t, r.body)

	requireErrorBody(t, e.req("POST", "/healthz", "{}", noAuth...), http.StatusMethodNotAllowed)
	// Not counted as API requests (benchmarks count HTTP requests per call).
	assert.Zero(t, e.srv.Stats().Requests)
}

// failingReady is a backend whose Ready fails with a message that must not
// reach the client.
type failingReady struct {
	restserver.Backend
	err error
}

func (f failingReady) Ready(context.Context) error { return f.err }

func TestReadyz(t *testing.T) {
	t.Run("ready", func(t *testing.T) {
		e := newEnv(t, envConfig{})
		r := e.req("GET", "/readyz", "", noAuth...)
		assert.Equal(t, http.StatusOK, r.status)
		assert.Equal(t, `{"status":"ready"}`, r.body)
	})
	t.Run("backend not ready", func(t *testing.T) {
		secret := errors.New("dial tcp 10.1.2.3:9092: broker sasl user=svc-orders refused")
		e := newEnv(t, envConfig{wrap: func(b restserver.Backend) restserver.Backend { return failingReady{b, secret} }})
		r := e.req("GET", "/readyz", "", noAuth...)
		assert.Equal(t, http.StatusServiceUnavailable, r.status)
		assert.Equal(t, `{"status":"not ready"}`, r.body, "the cause is logged, not answered")
	})
	t.Run("broker closed", func(t *testing.T) {
		e := newEnv(t, envConfig{})
		if e.kafka != nil {
			e.kafka.Kfake.Close() // the cluster goes away
		} else {
			require.NoError(t, e.broker.Close())
		}
		r := e.req("GET", "/readyz", "", noAuth...)
		assert.Equal(t, http.StatusServiceUnavailable, r.status)
		assert.Equal(t, `{"status":"not ready"}`, r.body)
		// Still alive: the process is up.
		assert.Equal(t, http.StatusOK, e.req("GET", "/healthz", "", noAuth...).status)
	})
	t.Run("server closing", func(t *testing.T) {
		e := newEnv(t, envConfig{})
		ready := e.req("GET", "/readyz", "", noAuth...)
		require.Equal(t, http.StatusOK, ready.status)
		require.NoError(t, e.srv.Close())
		// Close also closes the listener's connections: the probe fails
		// one way or the other, never with 200.
		r, err := http.Get(e.url + "/readyz")
		if err == nil {
			r.Body.Close()
			assert.Equal(t, http.StatusServiceUnavailable, r.StatusCode)
		}
	})
}

// scrape GETs /metrics with hdr and parses it with Prometheus's parser.
func scrape(t *testing.T, e *env, hdr ...string) map[string]*dto.MetricFamily {
	t.Helper()
	r := e.req("GET", "/metrics", "", hdr...)
	require.Equal(t, http.StatusOK, r.status, r.body)
	require.True(t, strings.HasPrefix(r.header.Get("Content-Type"), "text/plain; version=0.0.4"), r.header.Get("Content-Type"))
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(r.body))
	require.NoError(t, err, "scrape:\n%s", r.body)
	return fams
}

// value is the value of the sample of fam whose labels include want
// (pairs), and whether there is one.
func value(fam *dto.MetricFamily, want ...string) (float64, bool) {
	if fam == nil {
		return 0, false
	}
next:
	for _, m := range fam.Metric {
		for i := 0; i+1 < len(want); i += 2 {
			found := false
			for _, l := range m.Label {
				if l.GetName() == want[i] && l.GetValue() == want[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

func TestMetricsScrape(t *testing.T) {
	e := newEnv(t, envConfig{})
	e.createTopic("orders", 2)
	// 3 records of key+value 2+5 bytes, to partition 0.
	e.ok("POST", "/produce", `[{"topic":"orders","partition":0,"key":"k1","value":"hello"},{"topic":"orders","partition":0,"key":"k2","value":"world"},{"topic":"orders","partition":0,"key":"k3","value":"again"}]`)
	requireErrorBody(t, e.req("GET", "/no-such-route", ""), http.StatusNotFound)

	earliest := []string{"Kafka-Auto-Offset-Reset", "earliest", "Kafka-Enable-Auto-Commit", "false"}
	got := decode[[]consumed](t, e.ok("POST", "/consume/billing/i1", `{"topic":"orders","timeout":1000}`, earliest...))
	require.Len(t, got, 3)
	// Commit offset 1 of partition 0: lag 3-1 = 2. Partition 1 has no
	// commit: no lag is reported for it.
	e.ok("POST", "/commit/billing/i1", `{"topic":"orders","partition":0,"offset":1}`)

	fams := scrape(t, e)
	v, ok := value(fams["kafka_rest_http_requests_total"], "route", "produce", "code", "200")
	assert.True(t, ok)
	assert.Equal(t, 1.0, v)
	v, _ = value(fams["kafka_rest_http_requests_total"], "route", "other", "code", "404")
	assert.Equal(t, 1.0, v, "unknown paths share the route label other")
	v, _ = value(fams["kafka_rest_http_request_duration_seconds"], "route", "consume")
	assert.Equal(t, 1.0, v)
	assert.Equal(t, dto.MetricType_HISTOGRAM, fams["kafka_rest_http_request_duration_seconds"].GetType())
	v, _ = value(fams["kafka_rest_produced_records_total"], "topic", "orders")
	assert.Equal(t, 3.0, v)
	v, _ = value(fams["kafka_rest_produced_bytes_total"], "topic", "orders")
	assert.Equal(t, 21.0, v)
	v, _ = value(fams["kafka_rest_consumed_records_total"], "topic", "orders")
	assert.Equal(t, 3.0, v)
	v, _ = value(fams["kafka_rest_consumed_bytes_total"], "topic", "orders")
	assert.Equal(t, 21.0, v)
	v, _ = value(fams["kafka_rest_consumer_instances"])
	assert.Equal(t, 1.0, v)
	v, ok = value(fams["kafka_rest_consumer_lag"], "group", "billing", "topic", "orders", "partition", "0")
	assert.True(t, ok)
	assert.Equal(t, 2.0, v)
	_, ok = value(fams["kafka_rest_consumer_lag"], "group", "billing", "topic", "orders", "partition", "1")
	assert.False(t, ok, "no commit, no lag")

	// The first scrape is counted by the second.
	fams = scrape(t, e)
	v, _ = value(fams["kafka_rest_http_requests_total"], "route", "metrics", "code", "200")
	assert.Equal(t, 1.0, v)

	e.ok("POST", "/delete-consumer/billing/i1", "")
	fams = scrape(t, e)
	v, _ = value(fams["kafka_rest_consumer_instances"])
	assert.Equal(t, 0.0, v)
	assert.Empty(t, fams["kafka_rest_consumer_lag"].GetMetric())
}

func TestMetricsNeedAdminWhenAuthIsOn(t *testing.T) {
	e := newEnv(t, envConfig{server: []restserver.Option{restserver.WithUsers(
		restserver.User{Name: "orders-app", Password: "orders-secret", Produce: []restserver.TopicPattern{"orders"}})}})
	requireErrorBody(t, e.req("GET", "/metrics", "", noAuth...), http.StatusUnauthorized)
	requireErrorBody(t, e.req("GET", "/metrics", "", "Authorization", "Basic b3JkZXJzLWFwcDpvcmRlcnMtc2VjcmV0"), http.StatusForbidden)
	scrape(t, e) // the admin pair
	t.Run("open without auth", func(t *testing.T) {
		e := newEnv(t, envConfig{noAuth: true})
		scrape(t, e, noAuth...)
	})
}

// blockingLag is a backend whose Offsets blocks until released, the first
// time it is called: a scrape is then held in the middle of reading lag.
type blockingLag struct {
	restserver.Backend
	entered, release chan struct{}
	once             sync.Once
}

func (b *blockingLag) Offsets(ctx context.Context, tp transport.TopicPartition) (int64, int64, error) {
	first := false
	b.once.Do(func() { first = true })
	if first {
		close(b.entered)
		select {
		case <-b.release:
		case <-ctx.Done():
		}
	}
	return b.Backend.Offsets(ctx, tp)
}

// TestScrapeTakesNoLockProduceWaitsOn holds a scrape in the middle of
// reading consumer lag from the backend and checks that produce, consume
// and another scrape all go on meanwhile.
func TestScrapeTakesNoLockProduceWaitsOn(t *testing.T) {
	bl := &blockingLag{entered: make(chan struct{}), release: make(chan struct{})}
	e := newEnv(t, envConfig{wrap: func(b restserver.Backend) restserver.Backend { bl.Backend = b; return bl }})
	e.createTopic("orders", 1)
	earliest := []string{"Kafka-Auto-Offset-Reset", "earliest", "Kafka-Enable-Auto-Commit", "false"}
	e.ok("POST", "/produce/orders", `{"value":"v"}`)
	e.ok("POST", "/consume/g/i", `{"topic":"orders","timeout":1000}`, earliest...)
	e.ok("POST", "/commit/g/i", "")

	scraped := make(chan reply, 1)
	go func() {
		// Not e.req: that fails the test from another goroutine.
		r, err := http.NewRequest("GET", e.url+"/metrics", nil)
		if err == nil {
			r.SetBasicAuth(testUser, testPass)
			var resp *http.Response
			if resp, err = e.client.Do(r); err == nil {
				var b bytes.Buffer
				_, _ = b.ReadFrom(resp.Body)
				resp.Body.Close()
				scraped <- reply{status: resp.StatusCode, body: b.String()}
				return
			}
		}
		scraped <- reply{body: err.Error()}
	}()
	select {
	case <-bl.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the scrape never read the lag")
	}
	start := time.Now()
	for i := range 50 {
		e.ok("POST", "/produce/orders", `{"value":"`+strings.Repeat("x", i)+`"}`)
	}
	e.ok("POST", "/consume/g/i", `{"topic":"orders","timeout":1000}`, earliest...)
	t.Logf("50 produces and a consume while a scrape was held: %v", time.Since(start))
	select {
	case r := <-scraped:
		t.Fatalf("the scrape ended before its lag read was released: %d %s", r.status, r.body)
	default:
	}
	close(bl.release)
	r := <-scraped
	require.Equal(t, http.StatusOK, r.status, r.body)
	assert.Contains(t, r.body, `kafka_rest_consumer_lag{group="g",topic="orders",partition="0"}`)
}

func TestAccessLogShowsNoCredentials(t *testing.T) {
	var buf testutil.SyncBuffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	e := newEnv(t, envConfig{server: []restserver.Option{restserver.WithAccessLog(log)}})

	e.ok("POST", "/produce/orders", `{"value":"v"}`)
	requireErrorBody(t, e.req("GET", "/topics", "", "Authorization", "Basic "+basic("intruder", "guessed-password")), http.StatusUnauthorized)
	requireErrorBody(t, e.req("GET", "/topics", "", "Authorization", "Basic "+basic(testUser, "wrong-"+testPass)), http.StatusUnauthorized)
	e.ok("POST", "/webhook?topic=orders&user="+testUser+"&pass="+testPass, "raw body", noAuth...)
	e.req("GET", "/healthz", "", noAuth...)

	out := buf.String()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 5, out)
	assert.Contains(t, lines[0], "msg=access")
	assert.Contains(t, lines[0], "method=POST path=/produce/orders status=200")
	assert.Contains(t, lines[1], "path=/topics status=401")
	assert.Contains(t, lines[3], "path=/webhook status=200")
	assert.Contains(t, lines[4], "path=/healthz status=200")
	for _, secret := range []string{testPass, testUser, "guessed-password", "intruder", basic(testUser, testPass), "pass=", "user="} {
		assert.NotContains(t, out, secret)
	}
}

// TestScrapeDuringLoad scrapes in a loop while producers write, and checks
// that every scrape parses, counters never go down, and the final counts
// are exact.
func TestScrapeDuringLoad(t *testing.T) {
	e := newEnv(t, envConfig{})
	e.createTopic("load", 4)
	const producers, each = 4, 100
	var wg sync.WaitGroup
	errs := make(chan error, producers)
	for p := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				r, err := http.NewRequest("POST", e.url+"/produce/load", strings.NewReader(`{"value":"0123456789"}`))
				if err != nil {
					errs <- err
					return
				}
				r.SetBasicAuth(testUser, testPass)
				resp, err := e.client.Do(r)
				if err != nil {
					errs <- err
					return
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					errs <- errors.New("produce " + strconv.Itoa(p) + "/" + strconv.Itoa(i) + ": " + resp.Status)
					return
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	scrapes, last := 0, 0.0
	for loading := true; loading; {
		select {
		case <-done:
			loading = false
		default:
		}
		v, _ := value(scrape(t, e)["kafka_rest_produced_records_total"], "topic", "load")
		require.GreaterOrEqual(t, v, last, "a counter went down")
		last = v
		scrapes++
	}
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	fams := scrape(t, e)
	v, _ := value(fams["kafka_rest_produced_records_total"], "topic", "load")
	assert.Equal(t, float64(producers*each), v)
	v, _ = value(fams["kafka_rest_produced_bytes_total"], "topic", "load")
	assert.Equal(t, float64(producers*each*10), v)
	v, _ = value(fams["kafka_rest_http_requests_total"], "route", "produce", "code", "200")
	assert.Equal(t, float64(producers*each), v)
	t.Logf("%d scrapes during %d produces", scrapes, producers*each)
}
