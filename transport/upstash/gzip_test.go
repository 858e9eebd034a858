package upstash

import (
	"compress/gzip"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/transport"
)

// The transport's own client asks for gzip (Accept-Encoding: gzip, as
// net/http would) and reads a gzip answer, success or error, as the
// server's JSON.
func TestGzipAnswers(t *testing.T) {
	var asked atomic.Int64
	s := hostile(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Accept-Encoding") == "gzip" {
			asked.Add(1)
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Encoding", "gzip")
		body := `[{"topic":"t","partition":0,"offset":41,"timestamp":1}]`
		if strings.HasSuffix(r.URL.Path, "/produce/refused") {
			w.WriteHeader(http.StatusBadRequest)
			body = `{"error":"refused in gzip","status":400}`
		}
		zw := gzip.NewWriter(w)
		_, _ = zw.Write([]byte(body))
		_ = zw.Close()
	})
	tr := hostileTransport(t, s)
	out, err := tr.Produce(t.Context(), transport.Message{Topic: "t", Value: []byte("v")})
	require.NoError(t, err)
	require.Len(t, out, 1)
	assert.Equal(t, int64(41), out[0].Offset)
	assert.Equal(t, int64(1), asked.Load(), "the request asked for gzip")

	var he *Error
	err = tr.call(t.Context(), request{method: http.MethodPost, path: "/produce/refused", body: []byte(`[]`), noRetry: true}, &metadataAnswer{})
	require.ErrorAs(t, err, &he)
	assert.Equal(t, http.StatusBadRequest, he.Status)
	assert.Equal(t, "refused in gzip", he.Message)
}
