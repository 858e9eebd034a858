package kafkabackend_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/restserver"
	"github.com/kafkarpc/kafkarpc/restserver/kafkabackend/kafkatest"
	"github.com/kafkarpc/kafkarpc/transport"
)

func post(t *testing.T, url, body string) (int, string) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// assignment returns the partitions of topic that instance of group owns,
// from /consumers.
func assignment(t *testing.T, url, group, instance, topic string) []int32 {
	t.Helper()
	resp, err := http.Get(url + "/consumers")
	require.NoError(t, err)
	defer resp.Body.Close()
	var groups []struct {
		Name      string `json:"name"`
		Instances []struct {
			Name   string `json:"name"`
			Topics []struct {
				Topic      string  `json:"topic"`
				Partitions []int32 `json:"partitions"`
			} `json:"topics"`
		} `json:"instances"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&groups))
	for _, g := range groups {
		for _, in := range g.Instances {
			if g.Name == group && in.Name == instance {
				for _, tp := range in.Topics {
					if tp.Topic == topic {
						return tp.Partitions
					}
				}
			}
		}
	}
	return nil
}

// An idle instance expired by the REST server leaves its Kafka group at
// once (LeaveGroup by instance id): the other instance gets its partitions
// within a rebalance, long before the 120 s session timeout a static member
// that merely closed would hold them for. Its delete does the same.
func TestIdleExpiryAndDeleteLeaveTheGroup(t *testing.T) {
	c := kafkatest.Start(t, kafkatest.Config{Topics: map[string]int32{"t": 4}})
	rs, err := restserver.New(c.Backend, restserver.WithInstanceExpiry(time.Second), restserver.WithLogger(slog.New(slog.DiscardHandler)))
	require.NoError(t, err)
	url := serve(t, rs)

	consume := func(instance string) {
		t.Helper()
		status, body := post(t, url+"/consume/g/"+instance, `{"topic":"t","timeout":0}`)
		require.Equal(t, 200, status, body)
	}
	consume("idle")
	consume("busy")
	require.Len(t, assignment(t, url, "g", "busy", "t"), 2, "two partitions each")

	// Only "busy" keeps asking; "idle" expires after a second of silence.
	start := time.Now()
	for time.Since(start) < 20*time.Second && len(assignment(t, url, "g", "busy", "t")) < 4 {
		consume("busy")
	}
	took := time.Since(start)
	assert.Len(t, assignment(t, url, "g", "busy", "t"), 4, "the expired instance's partitions moved")
	assert.Less(t, took, 15*time.Second, "moved at once after expiry, not after the session timeout")
	t.Logf("partitions of the expired instance moved %v after it went idle (expiry 1s)", took.Round(10*time.Millisecond))
	assert.Nil(t, assignment(t, url, "g", "idle", "t"))

	// Delete: a new instance gets everything as soon as it joins.
	status, body := post(t, url+"/delete-consumer/g/busy", "")
	require.Equal(t, 200, status, body)
	start = time.Now()
	consume("next")
	assert.Len(t, assignment(t, url, "g", "next", "t"), 4)
	assert.Less(t, time.Since(start), 10*time.Second)

	// Committed offsets stay readable through the backend.
	off, err := c.Backend.Committed(t.Context(), "g", transport.TopicPartition{Topic: "t"})
	require.NoError(t, err)
	assert.GreaterOrEqual(t, off, int64(0))
}
