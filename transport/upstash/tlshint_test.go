package upstash_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/upstash"
)

// A URL given without a scheme gets https://. Against a server that
// speaks plain HTTP (kafka-rest, a local proxy), Go's error reads "tls:
// first record does not look like a TLS handshake" and says nothing of
// what to do: it now says to give the URL as http://.
func TestPlainHTTPServerBehindASchemelessURLSaysUseHTTP(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(`[]`))
	}))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	tr, err := upstash.New(upstash.WithURL(host), upstash.WithCredentials("u", "p"))
	require.NoError(t, err)
	t.Cleanup(func() { tr.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	_, err = tr.Produce(ctx, transport.Message{Topic: "t", Value: []byte("v")})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "give its URL as http://"+"host:port", "%v", err)
	assert.NotErrorIs(t, err, transport.ErrUnavailable, "not retried: another attempt cannot fix it")
	assert.Less(t, time.Since(start), 2*time.Second, "not retried until the deadline")
}
