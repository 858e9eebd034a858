package restwire

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A consume answer as the project's server writes it is decoded on an
// arena sized at the body less its smallest objects' bytes: room for
// every key, value and header value (no growth, one allocation), well
// under the body's size for rpc-shaped records.
func TestAnswerArenaSize(t *testing.T) {
	for _, n := range []int{1, 4, 16, 100} {
		data := appendArray(rpcRecords()[:n], AppendConsumed)
		size := arenaSize(len(data), n, countHeaders(data))
		d := newDecoderArena(data, size)
		md := messageDecoder{decoder: d}
		_, ok := arrayOf(&md.decoder, n, md.message)
		require.True(t, ok)
		assert.LessOrEqual(t, len(md.arena), size, "%d records: the arena did not grow", n)
		assert.Equal(t, size, cap(md.arena), "%d records: the arena did not grow", n)
		assert.Less(t, size, len(data)*7/10, "%d records: well under the body's size", n)
	}
}

func countHeaders(data []byte) int {
	var ms []ConsumedMessage
	if err := json.Unmarshal(data, &ms); err != nil {
		panic(err)
	}
	h := 0
	for _, m := range ms {
		h += len(m.Headers)
	}
	return h
}

// Records smaller than the project's server writes them (fields left out,
// as another server may) need more arena than arenaSize gives: it grows,
// and every key, value and header value decoded before and after the
// growth is intact.
func TestAnswerArenaGrows(t *testing.T) {
	var body []byte
	body = append(body, '[')
	for i := range 50 {
		if i > 0 {
			body = append(body, ',')
		}
		body = fmt.Appendf(body, `{"topic":"t","value":"v%03d-0123456789012345678901234567890123456789","key":"k%03d-0123456789012345678901234567890123456789","headers":[{"key":"h","value":"w%03d-0123456789012345678901234567890123456789"}]}`, i, i, i)
	}
	body = append(body, ']')
	require.Less(t, arenaSize(len(body), 50, 50), 50*3*44, "the arena must grow for this body")
	got, err := DecodeMessagesLimited(context.Background(), body, 0)
	require.NoError(t, err)
	want, err := decodeMessagesStd(context.Background(), body, 0)
	require.NoError(t, err)
	require.Equal(t, want, got)
	for i, m := range got {
		assert.Equal(t, fmt.Sprintf("v%03d-0123456789012345678901234567890123456789", i), string(m.Value))
		assert.Equal(t, fmt.Sprintf("k%03d-0123456789012345678901234567890123456789", i), m.Key)
		assert.Equal(t, fmt.Sprintf("w%03d-0123456789012345678901234567890123456789", i), m.Headers[0].Value)
	}
}
