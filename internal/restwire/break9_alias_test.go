package restwire

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/transport"
)

// Attacks on the decoders' string views (strView, bufString, keep): what
// they hand out must not point into the body they read, which the server
// and the client read into pooled buffers and reuse for the next request,
// nor into arena space that is rewritten, and writing into or appending to
// a returned value must not change any key or header. Each body is decoded
// from its own buffer, which is then overwritten and reused for another
// decode; the records must still equal encoding/json's reading of the
// original bytes.

// break9ProduceBodies are produce bodies that exercise every place a string
// view is taken on the server.
func break9ProduceBodies() map[string]string {
	long := strings.Repeat("0123456789abcdef", 320) // 5120 bytes
	longEsc := strings.Repeat(`ab\"cd\\ef\n\u00e9\u4e16`, 300)
	bodies := map[string]string{
		"escaped everywhere": `[{"topic":"t\u0031","key":"k\"1","value":"v\\1\/","headers":[{"key":"h\u0041","value":"x\ty-not-known"},{"key":"i","value":"\u00e9\u4e16\u0000\u001f"}]}]`,
		"plain everywhere":   `[{"topic":"t","key":"key-1","value":"value-1","headers":[{"key":"h","value":"header-value-1"}]}]`,
		"key twice":          `{"topic":"t","key":"k\"first","key":"second-plain","value":"v"}`,
		"key twice rev":      `{"topic":"t","key":"first-plain","key":"k\"second","value":"v"}`,
		"value twice":        `{"topic":"t","value":"v\"first","value":"second-plain","key":"k"}`,
		"value twice rev":    `{"topic":"t","value":"first-plain","value":"v\"second","key":"k"}`,
		"header value twice": `{"topic":"t","value":"v","headers":[{"key":"a","value":"pending-one\"x","value":"pending-two"},{"key":"b","value":"pending-three","value":"rpc-v"},{"key":"c","value":"rpc-v","value":"pending\"four"},{"value":"before-key","key":"d"}]}`,
		"empty strings":      `[{"topic":"t","key":"","value":"","headers":[{"key":"","value":""},{"key":"a","value":""}]},{"topic":"t","value":"x"}]`,
		"value absent":       `[{"topic":"t","key":"only-key","headers":[{"key":"a","value":"hv"}]},{"topic":"t","key":"k","value":""},{"topic":"t","value":null}]`,
		"interned values":    `[{"topic":"t","value":"v","headers":[{"key":"abc","value":"abc"},{"key":"rpc-id","value":"rpc-id"},{"key":"xyz","value":"abc"}]},{"topic":"t","value":"w","headers":[{"key":"abc","value":"xyz"}]}]`,
		"long":               `[{"topic":"t","key":"` + long + `","value":"` + long + `","headers":[{"key":"h","value":"` + long + `"},{"key":"i","value":"` + longEsc + `"}]},{"topic":"t","key":"` + longEsc + `","value":"` + longEsc + `"}]`,
		"pretty":             "[ {\n \"topic\" : \"t\" , \"key\" : \"a\\\"b\" ,\n \"value\" : \"c\" , \"headers\" : [ { \"key\" : \"h\" , \"value\" : \"hv-long-enough-to-be-pending-here\" } ] } ]",
		// the fast path gives up half way (a value that is a number, a
		// field spelled otherwise): the server falls back to encoding/json
		"fails half way":  `[{"topic":"t","key":"k\"1","value":"v1","headers":[{"key":"h","value":"hv1-pending"}]},{"topic":"t","key":"k2","value":12}]`,
		"fails half way2": `[{"topic":"t","key":"k1","value":"v1"},{"topic":"t","Key":"k2","value":"v2"}]`,
		"bad utf8 later":  "[{\"topic\":\"t\",\"key\":\"k1\",\"value\":\"v1\"},{\"topic\":\"t\",\"key\":\"k\xff2\",\"value\":\"v2\"}]",
	}
	var many strings.Builder
	many.WriteByte('[')
	for i := range 1000 {
		if i > 0 {
			many.WriteByte(',')
		}
		switch i % 4 {
		case 0:
			fmt.Fprintf(&many, `{"topic":"t","key":"key-%d","value":"value-%d","headers":[{"key":"rpc-v","value":"1"},{"key":"id","value":"id-%d-%s"}]}`, i, i, i, long[:i%64])
		case 1:
			fmt.Fprintf(&many, `{"topic":"t%d","key":"k\"%d","value":"v\\%d\u00e9","headers":[{"key":"h%d","value":"hv\n%d"}]}`, i%7, i, i, i%9, i)
		case 2:
			fmt.Fprintf(&many, `{"key":"key-%d-%s","value":"","topic":"t","headers":[]}`, i, long[:40+i%50])
		case 3:
			fmt.Fprintf(&many, `{"topic":"t","partition":%d,"timestamp":%d,"value":"%s-%d"}`, i%3, i, long[:i%200], i)
		}
	}
	many.WriteByte(']')
	bodies["1000 records"] = many.String()
	return bodies
}

// cloneItems deep-copies items, so that they stay what they were whatever
// happens to the memory the originals point to.
func cloneItems(items []TopicMessage) []TopicMessage {
	out := make([]TopicMessage, len(items))
	for i, it := range items {
		c := it
		c.Topic, c.Key = strings.Clone(it.Topic), strings.Clone(it.Key)
		if it.Value.Bytes != nil {
			c.Value.Bytes = bytes.Clone(it.Value.Bytes)
			if c.Value.Bytes == nil {
				c.Value.Bytes = []byte{}
			}
		}
		if it.Headers != nil {
			c.Headers = make([]Header, len(it.Headers))
			for j, h := range it.Headers {
				c.Headers[j] = Header{strings.Clone(h.Key), strings.Clone(h.Value)}
			}
		}
		out[i] = c
	}
	return out
}

// scribble overwrites every byte b can reach, as the next request read
// into the same pooled buffer would.
func scribble(b []byte) {
	b = b[:cap(b)]
	for i := range b {
		b[i] = '!'
	}
}

// attackProduce decodes body on the fast path from a buffer of its own,
// then overwrites the buffer, decodes another body (which reuses the
// decoder's pooled scratch) and writes into and appends to every value:
// the records' topics, keys and headers must stay encoding/json's reading
// of body, and each value the bytes its writer wrote. When the fast path
// gives up, encoding/json (the server's fallback) is attacked the same
// way. It reports whether the fast path took body.
func attackProduce(t *testing.T, body []byte) bool {
	t.Helper()
	want, err := stdTopicMessages(bytes.Clone(body))
	buf := bytes.Clone(body)
	items, ok := DecodeTopicMessages(buf)
	if !ok {
		if err != nil {
			return false
		}
		items, err = stdTopicMessages(buf)
		require.NoError(t, err)
	} else {
		require.NoError(t, err, "the fast path took what encoding/json refuses: %q", body)
	}
	scribble(buf)
	// Another body through the same pooled scratch and a fresh arena.
	_, _ = DecodeTopicMessages([]byte(`[{"topic":"other","key":"OTHER\"KEY","value":"OTHER\nVALUE","headers":[{"key":"o","value":"OTHER-HEADER-VALUE-XXXXXXXXXXXXXXXX"},{"key":"p","value":"P\"P"}]}]`))
	sameItems(t, want, items)

	// Each value written through and appended to, with a byte of its own.
	for i := range items {
		v := items[i].Value.Bytes
		if ok {
			// The fast path's values share an allocation with the keys and
			// header values; encoding/json's have one of their own.
			require.Equal(t, len(v), cap(v), "record %d: the value has room beyond its end", i)
		}
		fill := byte('A' + i%26)
		for j := range v {
			v[j] = fill
		}
		items[i].Value.Bytes = append(v, fill, fill, fill, fill, fill, fill, fill, fill)
	}
	for i := range items {
		w, g := want[i], items[i]
		assert.Equal(t, w.Topic, g.Topic, "record %d", i)
		assert.Equal(t, w.Key, g.Key, "record %d: key changed with a value", i)
		assert.Equal(t, w.Headers, g.Headers, "record %d: headers changed with a value", i)
		assert.Equal(t, strings.Repeat(string(rune('A'+i%26)), len(w.Value.Bytes)+8), string(g.Value.Bytes), "record %d: value changed by another's", i)
	}
	return ok
}

func TestBreak9ProduceDecodeOwnsItsBytes(t *testing.T) {
	fast := 0
	for name, body := range break9ProduceBodies() {
		t.Run(name, func(t *testing.T) {
			if attackProduce(t, []byte(body)) {
				fast++
			}
		})
	}
	assert.GreaterOrEqual(t, fast, 12, "most bodies take the fast path")
	for _, s := range produceSeeds {
		attackProduce(t, []byte(s))
	}
}

// break9Consumed writes items as the server answers a consume, keeping the
// exact strings (escapes included) of a produce body: the same attacks on
// the client's decoder.
func break9ConsumedBodies() map[string]string {
	long := strings.Repeat("0123456789abcdef", 320)
	longEsc := strings.Repeat(`ab\"cd\\ef\n\u00e9\u4e16`, 300)
	rec := func(key, value, headers string) string {
		return `{"topic":"t","partition":0,"offset":1,"timestamp":1,"key":"` + key + `","value":"` + value + `","headers":[` + headers + `]}`
	}
	bodies := map[string]string{
		"escaped everywhere": `[` + rec(`k\"1-long-enough-to-be-kept-on-the-arena`, `v\\1\/`, `{"key":"h\u0041","value":"x\ty-not-known"},{"key":"i","value":"\u00e9\u4e16\u0000\u001f"}`) + `]`,
		"plain everywhere":   `[` + rec(`key-1-long-enough-to-be-kept-on-the-arena`, `value-1`, `{"key":"h","value":"header-value-1-long-enough-to-be-kept"}`) + `]`,
		"header value twice": `[` + rec(`k`, `v`, `{"key":"a","value":"pending-one\"x-long-enough-to-be-kept","value":"pending-two-long-enough-to-be-kept-here"},{"key":"b","value":"kept-three-long-enough-to-be-kept","value":"rpc-v"},{"key":"c","value":"rpc-v","value":"pending\"four"}`) + `]`,
		"empty strings":      `[` + rec(``, ``, `{"key":"","value":""},{"key":"a","value":""}`) + `,` + rec(``, `x`, ``) + `]`,
		"interned values":    `[` + rec(`abc`, `v`, `{"key":"abc","value":"abc"},{"key":"xyz","value":"abc"}`) + `,` + rec(`xyz`, `w`, `{"key":"abc","value":"xyz"}`) + `]`,
		"long":               `[` + rec(long, long, `{"key":"h","value":"`+long+`"},{"key":"i","value":"`+longEsc+`"}`) + `,` + rec(longEsc, longEsc, ``) + `]`,
		"pretty":             "[ {\n \"topic\" : \"t\" , \"partition\" : 0 , \"offset\" : 1 , \"timestamp\" : 1 , \"key\" : \"a\\\"b-long-enough-to-be-kept-on-the-arena\" ,\n \"value\" : \"c\" , \"headers\" : [ { \"key\" : \"h\" , \"value\" : \"hv-long-enough-to-be-kept-on-the-arena\" } ] } ]",
		"fails half way":     `[` + rec(`k\"1-long-enough-to-be-kept-on-the-arena`, `v1`, `{"key":"h","value":"hv1-long-enough-to-be-kept-on-the-arena"}`) + `,{"topic":"t","extra":1,"Value":"v2"}]`,
		"value twice":        `[{"topic":"t","key":"long-enough-to-be-kept-on-the-arena-k","value":"a\"1","value":"b"}]`,
		"bad utf8 later":     "[" + rec(`k1-long-enough-to-be-kept-on-the-arena`, `v1`, ``) + ",{\"topic\":\"t\",\"key\":\"k\xff2\",\"value\":\"v2\"}]",
	}
	var many strings.Builder
	many.WriteByte('[')
	for i := range 1000 {
		if i > 0 {
			many.WriteByte(',')
		}
		switch i % 3 {
		case 0:
			many.WriteString(rec(fmt.Sprintf("0190d5b2-7c1e-7a55-9c1d-%012d", i), fmt.Sprintf(`{\"id\":%d}`, i),
				fmt.Sprintf(`{"key":"rpc-v","value":"1"},{"key":"rpc-id","value":"0190d5b2-7c1e-7a55-9c1d-%012d"},{"key":"rpc-kind","value":"reply"}`, i)))
		case 1:
			many.WriteString(rec(fmt.Sprintf(`k\"%d-%s`, i, long[:i%80]), fmt.Sprintf(`v\\%d\u00e9`, i), fmt.Sprintf(`{"key":"h%d","value":"hv\n%d-%s"}`, i%9, i, long[:i%70])))
		case 2:
			many.WriteString(rec(fmt.Sprintf("k%d", i), "", ""))
		}
	}
	many.WriteByte(']')
	bodies["1000 records"] = many.String()
	return bodies
}

// cloneMessages deep-copies msgs.
func cloneMessages(msgs []transport.Message) []transport.Message {
	out := make([]transport.Message, len(msgs))
	for i, m := range msgs {
		c := m
		c.Topic, c.Key, c.Value = strings.Clone(m.Topic), strings.Clone(m.Key), append([]byte{}, m.Value...)
		if m.Headers != nil {
			c.Headers = make([]transport.Header, len(m.Headers))
			for j, h := range m.Headers {
				c.Headers[j] = transport.Header{Key: strings.Clone(h.Key), Value: strings.Clone(h.Value)}
			}
		}
		out[i] = c
	}
	return out
}

// attackMessages is attackProduce for the client's decoder of consume and
// fetch answers (DecodeMessages, fast path and fallback). It reports
// whether encoding/json accepts body.
func attackMessages(t *testing.T, body []byte) bool {
	t.Helper()
	var ws []ConsumedMessage
	if err := json.Unmarshal(bytes.Clone(body), &ws); err != nil {
		_, err := DecodeMessages(bytes.Clone(body))
		require.Error(t, err)
		return false
	}
	want := cloneMessages(Messages(ws))
	_, fast := decodeMessagesFast(bytes.Clone(body))
	buf := bytes.Clone(body)
	msgs, err := DecodeMessages(buf)
	require.NoError(t, err)
	scribble(buf)
	_, _ = DecodeMessages([]byte(`[{"topic":"other","key":"OTHER\"KEY-long-enough-to-be-kept-on-the-arena","value":"OTHER\nVALUE","headers":[{"key":"o","value":"OTHER-HEADER-VALUE-XXXXXXXXXXXXXXXX"}]}]`))
	require.Equal(t, want, msgs, "records changed once their answer's buffer was reused")

	for i := range msgs {
		v := msgs[i].Value
		if fast {
			// The fast path's values share the answer's arena with long
			// keys and header values; encoding/json's have one of their own.
			require.Equal(t, len(v), cap(v), "record %d: the value has room beyond its end", i)
		}
		fill := byte('A' + i%26)
		for j := range v {
			v[j] = fill
		}
		msgs[i].Value = append(v, fill, fill, fill, fill, fill, fill, fill, fill)
	}
	for i := range msgs {
		w, g := want[i], msgs[i]
		assert.Equal(t, w.Topic, g.Topic, "record %d", i)
		assert.Equal(t, w.Key, g.Key, "record %d: key changed with a value", i)
		assert.Equal(t, w.Headers, g.Headers, "record %d: headers changed with a value", i)
		assert.Equal(t, strings.Repeat(string(rune('A'+i%26)), len(w.Value)+8), string(g.Value), "record %d: value changed by another's", i)
	}
	return true
}

func TestBreak9ConsumedDecodeOwnsItsBytes(t *testing.T) {
	for name, body := range break9ConsumedBodies() {
		t.Run(name, func(t *testing.T) {
			require.True(t, attackMessages(t, []byte(body)))
		})
	}
	for _, s := range consumedSeeds {
		attackMessages(t, []byte(s))
	}
}

// Bodies decoded at once from buffers of one pool, each buffer put back
// and reused for the next body as soon as it is decoded (as the server's
// and the client's pooled buffers are): every record stays as it was read.
func TestBreak9PooledBuffersConcurrently(t *testing.T) {
	pool := sync.Pool{New: func() any { return new([]byte) }}
	produce, consumed := break9ProduceBodies(), break9ConsumedBodies()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for round := range 20 {
				// distinct records per goroutine and round
				tag := fmt.Sprintf("g%d-r%d", g, round)
				body := []byte(strings.ReplaceAll(produce["1000 records"], "key-", tag+"-key-"))
				want, err := stdTopicMessages(body)
				if !assert.NoError(t, err) {
					return
				}
				b := pool.Get().(*[]byte)
				*b = append((*b)[:0], body...)
				items, ok := DecodeTopicMessages(*b)
				scribble(*b)
				pool.Put(b)
				if !assert.True(t, ok) {
					return
				}
				got := cloneItems(items)
				sameItems(t, want, got)

				cbody := []byte(strings.ReplaceAll(consumed["1000 records"], `hv\n`, `hv\n`+tag))
				var ws []ConsumedMessage
				if !assert.NoError(t, json.Unmarshal(cbody, &ws)) {
					return
				}
				b = pool.Get().(*[]byte)
				*b = append((*b)[:0], cbody...)
				msgs, err := DecodeMessages(*b)
				scribble(*b)
				pool.Put(b)
				if assert.NoError(t, err) {
					assert.Equal(t, Messages(ws), msgs)
				}
			}
		}()
	}
	wg.Wait()
}

// FuzzBreak9ProduceOwnsBytes runs attackProduce on any body.
func FuzzBreak9ProduceOwnsBytes(f *testing.F) {
	for _, s := range produceSeeds {
		f.Add([]byte(s))
	}
	for _, s := range break9ProduceBodies() {
		if len(s) < 4096 {
			f.Add([]byte(s))
		}
	}
	f.Fuzz(func(t *testing.T, body []byte) { attackProduce(t, body) })
}

// FuzzBreak9MessagesOwnBytes runs attackMessages on any answer.
func FuzzBreak9MessagesOwnBytes(f *testing.F) {
	for _, s := range consumedSeeds {
		f.Add([]byte(s))
	}
	for _, s := range break9ConsumedBodies() {
		if len(s) < 4096 {
			f.Add([]byte(s))
		}
	}
	f.Fuzz(func(t *testing.T, body []byte) { attackMessages(t, body) })
}
