package restwire

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/kafkarpc/kafkarpc/transport"
)

// AckToken tells answers apart by every record, not by the last alone, and
// by topic; it is the same for the same records, and safe in a header.
func TestBreak13AckTokenCoversEveryRecord(t *testing.T) {
	r := transport.Message{Topic: "jobs", Partition: 1, Offset: 7}
	n := transport.Message{Topic: "jobs", Partition: 0, Offset: 3}
	other := transport.Message{Topic: "jobs.b", Partition: 1, Offset: 7}
	one := AckToken([]transport.Message{r})
	assert.Equal(t, one, AckToken([]transport.Message{{Topic: "jobs", Partition: 1, Offset: 7, Value: []byte("v")}}), "values do not count")
	assert.NotEqual(t, one, AckToken([]transport.Message{n, r}), "same last record, a record more")
	assert.NotEqual(t, AckToken([]transport.Message{n, r}), AckToken([]transport.Message{{Topic: "jobs", Partition: 0, Offset: 4}, r}), "same count and last record")
	assert.NotEqual(t, one, AckToken([]transport.Message{other}), "same partition and offset in another topic")
	assert.NotEqual(t, AckToken([]transport.Message{n, r}), AckToken([]transport.Message{r, n}))
	for _, tok := range []string{one, AckToken([]transport.Message{n, r, other})} {
		for _, c := range tok {
			assert.True(t, c == '-' || '0' <= c && c <= '9' || 'a' <= c && c <= 'f', "%q in %q", c, tok)
		}
		assert.NotEqual(t, AckNone, tok)
	}
}
