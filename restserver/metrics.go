package restserver

import (
	"bufio"
	"cmp"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kafkarpc/kafkarpc/transport"
)

// Metrics (GET /metrics), in the Prometheus text exposition format 0.0.4.
//
// The format is written here by hand rather than with
// prometheus/client_golang: kafka-rest is a small server whose dependency
// set is kept small (client_golang brings protobuf, procfs and the
// client_model), and the few counters, gauges and fixed-bucket histograms
// below need about a hundred lines. The tests parse the scrape with
// Prometheus's own parser (expfmt), so the output is held to the format.
//
// Every figure on the request path is an atomic counter, and per-topic
// counters live in a sync.Map, read without a lock once the topic has been
// seen: a scrape takes no lock that a produce or consume waits on. The one
// lock a scrape takes of the server's is the instance table's mutex, for
// the time of copying the instance list; consumer lag is then read from
// the backend (Committed and Offsets, per partition) outside it.
//
// Metric names:
//
//	kafka_rest_http_requests_total{route,code}          counter
//	kafka_rest_http_request_duration_seconds{route}     histogram
//	kafka_rest_produced_records_total{topic}            counter
//	kafka_rest_produced_bytes_total{topic}              counter (key + value bytes)
//	kafka_rest_consumed_records_total{topic}            counter (returned by /consume and /fetch)
//	kafka_rest_consumed_bytes_total{topic}              counter (key + value bytes)
//	kafka_rest_consumer_instances                       gauge
//	kafka_rest_consumer_lag{group,topic,partition}      gauge (high watermark - committed offset)
//
// route is the first path segment of a known route (produce, consume,
// fetch, ..., healthz, readyz, metrics) or "other": the label set stays
// bounded whatever paths clients send.

// metricRoutes are the values of the route label.
var metricRoutes = func() []string {
	names := []string{"healthz", "readyz", "metrics", "other"}
	for k := range routes {
		if !slices.Contains(names, k.name) {
			names = append(names, k.name)
		}
	}
	slices.Sort(names)
	return names
}()

// routeIndex maps a route label to its index in metricRoutes. Read-only
// after init.
var routeIndex = func() map[string]int {
	m := make(map[string]int, len(metricRoutes))
	for i, n := range metricRoutes {
		m[n] = i
	}
	return m
}()

// latencyBuckets are the upper bounds, in seconds, of the request duration
// histogram. Long polls (consume, fetch) land in the upper ones.
var latencyBuckets = [...]float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

const (
	minStatus = 100
	maxStatus = 599
)

// routeMetrics are one route's request counters and latency histogram.
type routeMetrics struct {
	byStatus [maxStatus - minStatus + 1]atomic.Uint64
	buckets  [len(latencyBuckets) + 1]atomic.Uint64 // the last is +Inf
	sumNanos atomic.Uint64
}

// topicMetrics are one topic's record and byte counters.
type topicMetrics struct {
	producedRecords, producedBytes atomic.Uint64
	consumedRecords, consumedBytes atomic.Uint64
}

// metrics are the server's figures for /metrics. The zero value is not
// ready: use newMetrics.
type metrics struct {
	routes []routeMetrics // by index in metricRoutes
	topics sync.Map       // topic name → *topicMetrics
}

func newMetrics() *metrics {
	return &metrics{routes: make([]routeMetrics, len(metricRoutes))}
}

// routeOf is the route label of a request path.
func routeOf(path string) int {
	p := strings.TrimPrefix(path, "/")
	if i := strings.IndexByte(p, '/'); i >= 0 {
		p = p[:i]
	}
	if i, ok := routeIndex[p]; ok {
		return i
	}
	return routeIndex["other"]
}

// request counts one answered request.
func (m *metrics) request(path string, status int, took time.Duration) {
	rm := &m.routes[routeOf(path)]
	if status == 0 {
		status = http.StatusOK // nothing written: net/http answers 200
	}
	status = min(max(status, minStatus), maxStatus)
	rm.byStatus[status-minStatus].Add(1)
	sec := took.Seconds()
	b := len(latencyBuckets)
	for i, le := range latencyBuckets {
		if sec <= le {
			b = i
			break
		}
	}
	rm.buckets[b].Add(1)
	rm.sumNanos.Add(uint64(max(took, 0)))
}

// topic returns topic's counters, making them on first use.
func (m *metrics) topic(name string) *topicMetrics {
	if tm, ok := m.topics.Load(name); ok {
		return tm.(*topicMetrics)
	}
	tm, _ := m.topics.LoadOrStore(name, new(topicMetrics))
	return tm.(*topicMetrics)
}

// produced counts records written.
func (m *metrics) produced(msgs []transport.Message) {
	m.count(msgs, true)
}

// consumed counts records returned to a client.
func (m *metrics) consumed(msgs []transport.Message) {
	m.count(msgs, false)
}

func (m *metrics) count(msgs []transport.Message, produced bool) {
	for i := 0; i < len(msgs); {
		// Runs of one topic (the common case: a batch to one topic, one
		// partition's records) cost one lookup.
		topic := msgs[i].Topic
		var n, bytes uint64
		for ; i < len(msgs) && msgs[i].Topic == topic; i++ {
			n++
			bytes += uint64(len(msgs[i].Key) + len(msgs[i].Value))
		}
		tm := m.topic(topic)
		if produced {
			tm.producedRecords.Add(n)
			tm.producedBytes.Add(bytes)
		} else {
			tm.consumedRecords.Add(n)
			tm.consumedBytes.Add(bytes)
		}
	}
}

// lagKey is one partition of one group.
type lagKey struct {
	group, topic string
	partition    int32
}

// lagTimeout bounds the backend calls of one scrape's consumer lag.
var lagTimeout = 5 * time.Second // a var for tests

// lagWorkers is how many lookups of a scrape's consumer lag run at once:
// each is a round trip to the broker (the committed offsets of a group's
// partitions of a topic, or of one partition on a backend that is no
// [CommittedLister]; the end offsets of a topic's partitions, or of one
// partition on a backend that is no [OffsetsLister]), and one after the
// other a few hundred partitions of a remote cluster filled lagTimeout.
const lagWorkers = 16

// consumerLag returns the lag of every partition assigned to a live
// consumer instance: the partition's high watermark minus its group's
// committed offset. Partitions whose group has committed nothing are left
// out (their lag depends on where the group will start), as are, with a
// warning, those not looked up within lagTimeout. The instance table is
// copied under s.mu; the backend is asked outside it, lagWorkers lookups
// at once: first the committed offsets, of each group's partitions of a
// topic in one call on a CommittedLister (one OffsetFetch on Kafka, where
// one per partition made a scrape of P partitions P round trips, each
// answering P offsets), then the end offsets of the partitions with one,
// of each topic's partitions in one call on an OffsetsLister.
func (s *Server) consumerLag(ctx context.Context) (map[lagKey]int64, int) {
	s.mu.Lock()
	insts := make([]*instance, 0, len(s.instances))
	for _, in := range s.instances {
		insts = append(insts, in)
	}
	s.mu.Unlock()
	var keys []lagKey
	seen := make(map[lagKey]bool)
	for _, in := range insts {
		m, err := in.currentMember()
		if err != nil || m == nil {
			continue
		}
		for topic, parts := range m.Assignment() {
			for _, p := range parts {
				k := lagKey{in.key.group, topic, p}
				if !seen[k] {
					seen[k] = true
					keys = append(keys, k)
				}
			}
		}
	}
	ctx, cancel := context.WithTimeout(ctx, lagTimeout)
	defer cancel()

	// The committed offsets, by lookups of keys[i] for i in a unit: a
	// group's partitions of one topic, or one partition. A failed lookup
	// leaves out its unit's partitions (a topic deleted meanwhile leaves
	// out only its own).
	var units [][]int
	if _, ok := s.backend.(CommittedLister); ok {
		unitOf := map[[2]string]int{}
		for i, k := range keys {
			u, ok := unitOf[[2]string{k.group, k.topic}]
			if !ok {
				u = len(units)
				unitOf[[2]string{k.group, k.topic}] = u
				units = append(units, nil)
			}
			units[u] = append(units[u], i)
		}
	} else {
		units = make([][]int, len(keys))
		for i := range keys {
			units[i] = []int{i}
		}
	}
	var (
		mu        sync.Mutex
		missed    int
		committed = make([]int64, len(keys)) // -1: none, or not looked up
	)
	forEachAtOnce(len(units), lagWorkers, func(u int) {
		tps := make([]transport.TopicPartition, len(units[u]))
		for j, i := range units[u] {
			tps[j] = transport.TopicPartition{Topic: keys[i].topic, Partition: keys[i].partition}
		}
		offs, err := s.committedOf(ctx, keys[units[u][0]].group, tps)
		for j, i := range units[u] {
			committed[i] = -1
			if err == nil {
				committed[i] = offs[j]
			}
		}
		if err != nil && ctx.Err() == context.DeadlineExceeded {
			mu.Lock()
			missed += len(units[u])
			mu.Unlock()
		}
	})

	// The end offsets of the partitions with a committed offset, by
	// lookups of keys[i] for i in a unit: a topic's partitions on an
	// OffsetsLister (one ListOffsets per leader on Kafka, where Offsets of
	// each made a scrape of P partitions 2P round trips), else one
	// partition.
	var endUnits [][]int
	_, batched := s.backend.(OffsetsLister)
	endUnitOf := map[string]int{}
	for i, k := range keys {
		if committed[i] < 0 {
			continue
		}
		u, ok := endUnitOf[k.topic]
		if !ok || !batched {
			u = len(endUnits)
			endUnitOf[k.topic] = u
			endUnits = append(endUnits, nil)
		}
		endUnits[u] = append(endUnits[u], i)
	}
	lag := make(map[lagKey]int64, len(keys))
	forEachAtOnce(len(endUnits), lagWorkers, func(u int) {
		tps := make([]transport.TopicPartition, len(endUnits[u]))
		for j, i := range endUnits[u] {
			tps[j] = transport.TopicPartition{Topic: keys[i].topic, Partition: keys[i].partition}
		}
		ends, err := s.offsetsOf(ctx, tps, false)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			if ctx.Err() == context.DeadlineExceeded {
				missed += len(endUnits[u])
			}
			return
		}
		for j, i := range endUnits[u] {
			lag[keys[i]] = max(ends[j]-committed[i], 0)
		}
	})
	if missed > 0 {
		s.log.Warn("kafka-rest: metrics: the consumer lag of some partitions was not looked up in time and is left out of the scrape",
			"partitions", missed, "of", len(keys), "timeout", lagTimeout)
	}
	return lag, len(insts)
}

// forEachAtOnce calls fn(i) for i = 0, ..., n-1, up to workers calls at
// once, and returns when all have returned.
func forEachAtOnce(n, workers int, fn func(i int)) {
	var (
		next atomic.Int64
		wg   sync.WaitGroup
	)
	for range min(workers, n) {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				fn(i)
			}
		})
	}
	wg.Wait()
}

// writeMetrics writes the scrape to w.
func (s *Server) writeMetrics(ctx context.Context, w io.Writer) error {
	bw := bufio.NewWriter(w)
	m := s.metrics

	header(bw, "kafka_rest_http_requests_total", "counter", "HTTP requests answered, by route and status code.")
	for i, name := range metricRoutes {
		rm := &m.routes[i]
		for st := range rm.byStatus {
			if n := rm.byStatus[st].Load(); n > 0 {
				fmt.Fprintf(bw, "kafka_rest_http_requests_total{route=%s,code=\"%d\"} %d\n", quote(name), st+minStatus, n)
			}
		}
	}

	header(bw, "kafka_rest_http_request_duration_seconds", "histogram", "Time to answer an HTTP request, by route (long polls included).")
	for i, name := range metricRoutes {
		rm := &m.routes[i]
		var cum uint64
		for b := range rm.buckets {
			cum += rm.buckets[b].Load()
			le := "+Inf"
			if b < len(latencyBuckets) {
				le = strconv.FormatFloat(latencyBuckets[b], 'g', -1, 64)
			}
			fmt.Fprintf(bw, "kafka_rest_http_request_duration_seconds_bucket{route=%s,le=%q} %d\n", quote(name), le, cum)
		}
		sum := float64(rm.sumNanos.Load()) / 1e9
		fmt.Fprintf(bw, "kafka_rest_http_request_duration_seconds_sum{route=%s} %s\n", quote(name), formatFloat(sum))
		fmt.Fprintf(bw, "kafka_rest_http_request_duration_seconds_count{route=%s} %d\n", quote(name), cum)
	}

	var topics []string
	m.topics.Range(func(k, _ any) bool { topics = append(topics, k.(string)); return true })
	slices.Sort(topics)
	for _, c := range [...]struct {
		name, help string
		get        func(*topicMetrics) uint64
	}{
		{"kafka_rest_produced_records_total", "Records written by /produce and /webhook, by topic.", func(t *topicMetrics) uint64 { return t.producedRecords.Load() }},
		{"kafka_rest_produced_bytes_total", "Key and value bytes of the records written, by topic.", func(t *topicMetrics) uint64 { return t.producedBytes.Load() }},
		{"kafka_rest_consumed_records_total", "Records returned by /consume and /fetch, by topic.", func(t *topicMetrics) uint64 { return t.consumedRecords.Load() }},
		{"kafka_rest_consumed_bytes_total", "Key and value bytes of the records returned, by topic.", func(t *topicMetrics) uint64 { return t.consumedBytes.Load() }},
	} {
		header(bw, c.name, "counter", c.help)
		for _, t := range topics {
			fmt.Fprintf(bw, "%s{topic=%s} %d\n", c.name, quote(t), c.get(m.topic(t)))
		}
	}

	lag, instances := s.consumerLag(ctx)
	header(bw, "kafka_rest_consumer_instances", "gauge", "Consumer instances alive now.")
	fmt.Fprintf(bw, "kafka_rest_consumer_instances %d\n", instances)

	header(bw, "kafka_rest_consumer_lag", "gauge", "High watermark minus the committed offset, per group and partition read by a live consumer instance.")
	keys := make([]lagKey, 0, len(lag))
	for k := range lag {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b lagKey) int {
		return cmp.Or(strings.Compare(a.group, b.group), strings.Compare(a.topic, b.topic), cmp.Compare(a.partition, b.partition))
	})
	for _, k := range keys {
		fmt.Fprintf(bw, "kafka_rest_consumer_lag{group=%s,topic=%s,partition=\"%d\"} %d\n", quote(k.group), quote(k.topic), k.partition, lag[k])
	}
	return bw.Flush()
}

func header(w io.Writer, name, typ, help string) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
}

// quote writes a label value as the text format wants it: in double
// quotes, with backslash, double quote and line feed escaped.
func quote(v string) string {
	var b strings.Builder
	b.Grow(len(v) + 2)
	b.WriteByte('"')
	for i := 0; i < len(v); i++ {
		switch c := v[i]; c {
		case '\\':
			b.WriteString(`\\`)
		case '"':
			b.WriteString(`\"`)
		case '\n':
			b.WriteString(`\n`)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func formatFloat(f float64) string {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return "NaN"
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}
