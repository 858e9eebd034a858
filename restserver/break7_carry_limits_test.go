package restserver_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/restserver"
)

// BUG (fixed: a consume carries at most restserver.MaxCarriedRecords
// records; more are refused with 413 before anything is written): the
// carried produce's answer travels in a response header, one Metadata
// object per record, and nothing bounded how many records a consume body
// (up to the 16 MiB body limit) carried. 160,000 small records (4 MiB of
// body, well within what POST /produce takes and answers in its body) were
// all written, then answered with a ~11 MB Kafka-Produced header, over Go's
// 10 MB limit on response headers (other HTTP clients cap far lower): the
// client got an error and no word on what was written, and a client that
// then produces the records again writes 160,000 duplicates.
func TestBreak7CarryHugeArrayRefusedBeforeWriting(t *testing.T) {
	t.Parallel()
	e := newCarryEnv(t)
	const n = 160_000
	var b strings.Builder
	b.WriteString(`{"topics":["in"],"timeout":0,"produce":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"topic":"out","value":""}`)
	}
	b.WriteString(`]}`)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "POST", e.url+"/consume/g/i", strings.NewReader(b.String()))
	require.NoError(t, err)
	req.SetBasicAuth(testUser, testPass)
	resp, err := e.client.Do(req)
	require.NoError(t, err, "the client gets an answer it can read")
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	require.NoError(t, err)
	msg := requireErrorBody(t, reply{status: resp.StatusCode, header: resp.Header, body: string(body)}, http.StatusRequestEntityTooLarge)
	assert.Contains(t, msg, "POST /produce")
	assert.Empty(t, resp.Header.Values(restserver.ProducedHeader))
	assert.Equal(t, int64(0), e.latest("out", 0), "nothing written")
	requireNothingConsumed(t, e, "g", "i")

	// At the limit: written, and answered.
	var ok strings.Builder
	ok.WriteString(`{"topics":["in"],"timeout":0,"produce":[`)
	for i := range restserver.MaxCarriedRecords {
		if i > 0 {
			ok.WriteByte(',')
		}
		ok.WriteString(`{"topic":"out","value":"v"}`)
	}
	ok.WriteString(`]}`)
	r := e.req("POST", "/consume/g/i", ok.String())
	require.Equal(t, http.StatusOK, r.status, r.body)
	assert.Len(t, decode[[]metadata](t, r.header.Get(restserver.ProducedHeader)), restserver.MaxCarriedRecords)
	assert.Equal(t, int64(restserver.MaxCarriedRecords), e.latest("out", 0))
}
