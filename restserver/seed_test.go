package restserver_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// TestSeedPHPRequests replays, byte for byte where it matters, the requests
// of the seed article's Laravel KafkaService (shared/seed): produce with the
// producer class as key and json_encode($data) as value, and the consume
// command's POST with its two Kafka-* headers.
func TestSeedPHPRequests(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{broker: []memory.Option{memory.WithTopic("reports", 1), memory.WithAutoCreate(false)}})
	// Laravel's Http::withHeaders($headers)->post(...): getHeaders() sets
	// these two; Guzzle adds its User-Agent.
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte(testUser+":"+testPass))
	phpHeaders := []string{"Authorization", auth, "Content-Type", "application/json", "User-Agent", "GuzzleHttp/7"}

	// KafkaConsume::handle(): supervisor keeps it running; it creates the
	// instance (latest) and waits up to 10 s.
	consumeHeaders := append([]string{"Kafka-Auto-Offset-Reset", "latest", "Kafka-Auto-Commit-Interval", "5000"}, phpHeaders...)
	consumeBody := `{"topic":"reports","timeout":10000}`
	n := e.srv.Stats().Requests
	consumed := make(chan reply, 1)
	go func() {
		consumed <- e.req("POST", "/consume/default_group/default_instance", consumeBody, consumeHeaders...)
	}()
	require.Eventually(t, func() bool {
		return e.srv.Stats().Requests > n && e.srv.Stats().Instances == 1
	}, 5*time.Second, time.Millisecond)
	require.Eventually(t, func() bool {
		gs := decode[[]groupAssignments](t, e.ok("GET", "/consumers", ""))
		return len(gs) == 1 && len(gs[0].Instances) == 1 && len(gs[0].Instances[0].Topics) == 1
	}, 5*time.Second, time.Millisecond, "the consumer has joined")

	// ReportsController: $this->kafkaService->produce('reports', self::class,
	// ['from' => now()->subMonth(), 'to' => now()]). PHP's json_encode
	// escapes '/' and the backslashes of the class name.
	produceBody := `{"key":"App\\Http\\Controllers\\ReportsController","value":"{\"from\":\"2024-05-01T10:00:00.000000Z\",\"to\":\"2024-06-01T10:00:00.000000Z\",\"path\":\"a\\/b\"}"}`
	r := e.req("POST", "/produce/reports", produceBody, phpHeaders...)
	require.Equal(t, http.StatusOK, r.status, r.body)
	var produced []map[string]any // $response->json()
	require.NoError(t, json.Unmarshal([]byte(r.body), &produced))
	require.Len(t, produced, 1)
	assert.Equal(t, "reports", produced[0]["topic"])
	assert.Equal(t, float64(0), produced[0]["offset"])
	for _, f := range []string{"topic", "partition", "offset", "timestamp"} {
		assert.Contains(t, produced[0], f)
	}

	// The waiting consume gets it; foreach ($messages as $message):
	// $producer = $message['key']; json_decode($message['value']).
	var cr reply
	select {
	case cr = <-consumed:
	case <-time.After(15 * time.Second):
		t.Fatal("consume did not return")
	}
	require.Equal(t, http.StatusOK, cr.status, cr.body)
	var messages []map[string]any
	require.NoError(t, json.Unmarshal([]byte(cr.body), &messages))
	require.Len(t, messages, 1)
	assert.Equal(t, `App\Http\Controllers\ReportsController`, messages[0]["key"])
	var payload map[string]string
	require.NoError(t, json.Unmarshal([]byte(messages[0]["value"].(string)), &payload))
	assert.Equal(t, map[string]string{"from": "2024-05-01T10:00:00.000000Z", "to": "2024-06-01T10:00:00.000000Z", "path": "a/b"}, payload)
	// ProcessKafkaEvent's match($producer . ':' . $topic).
	assert.Equal(t, `App\Http\Controllers\ReportsController:reports`, messages[0]["key"].(string)+":"+messages[0]["topic"].(string))

	// The command exits; supervisor starts it again with the same instance:
	// nothing is delivered twice.
	assert.Equal(t, "[]", e.ok("POST", "/consume/default_group/default_instance",
		`{"topic":"reports","timeout":50}`, consumeHeaders...))
}
