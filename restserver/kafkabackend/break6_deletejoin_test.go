package kafkabackend_test

import (
	"log/slog"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkarpc/kafkarpc/restserver"
	"github.com/kafkarpc/kafkarpc/restserver/kafkabackend/kafkatest"
)

// TestBreak6DeleteDuringJoinIsNot503ShuttingDown: a /delete-consumer of an
// instance whose first consume is still joining (a slow coordinator) ends
// the join with context.Canceled, and the consume answered 503 "server is
// shutting down" (logged as a backend fault) while the server was running
// fine: the client was told to retry a server that was not going anywhere
// instead of that its instance was deleted. It is now the 404 of an
// instance deleted during its consume.
func TestBreak6DeleteDuringJoinIsNot503ShuttingDown(t *testing.T) {
	c := kafkatest.Start(t, kafkatest.Config{Topics: map[string]int32{"t": 1}})
	rs, err := restserver.New(c.Backend, restserver.WithMaxTimeout(10*time.Second), restserver.WithLogger(slog.New(slog.DiscardHandler)))
	require.NoError(t, err)
	url := serve(t, rs)

	held := make(chan struct{}, 1)
	release := make(chan struct{})
	var once sync.Once
	c.Kfake.ControlKey(int16(kmsg.JoinGroup), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.Kfake.KeepControl()
		first := false
		once.Do(func() { first = true })
		if first {
			held <- struct{}{}
			c.Kfake.SleepControl(func() { <-release })
		}
		return nil, nil, false
	})
	defer close(release)

	type answer struct {
		status int
		body   string
	}
	done := make(chan answer, 1)
	go func() {
		st, b := post(t, url+"/consume/g/i", `{"topic":"t","timeout":0}`)
		done <- answer{st, b}
	}()
	select {
	case <-held:
	case <-time.After(10 * time.Second):
		t.Fatal("the join never reached the broker")
	}
	st, b := post(t, url+"/delete-consumer/g/i", "")
	require.Equal(t, http.StatusOK, st, b)
	select {
	case a := <-done:
		assert.Equal(t, http.StatusNotFound, a.status, a.body)
		assert.NotContains(t, a.body, "shutting down")
	case <-time.After(15 * time.Second):
		t.Fatal("the consume did not answer after its instance was deleted")
	}
}
