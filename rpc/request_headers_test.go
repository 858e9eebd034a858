package rpc

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/transport"
)

// request sizes a record's header array to the headers it writes, with
// one slot more when an Observer may add a trace context: every optional
// header (method, from, reply-to, timeout, the call's own) counts when set
// and only then, so the array is never too small (append would copy it)
// nor larger than it needs.
func TestRequestHeadersSizedToFit(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, tc := range []struct {
		name     string
		from     string
		kind     Kind
		replyTo  string
		ctx      context.Context
		opts     []CallOption
		observed bool
		want     []string
	}{
		{"call", "cli", KindRequest, "replies", ctx, nil, false,
			[]string{HeaderVersion, HeaderID, HeaderKind, HeaderFrom, HeaderReplyTo, HeaderTimeoutMs, HeaderContentType}},
		{"call without deadline, unnamed", "", KindRequest, "replies", context.Background(), nil, false,
			[]string{HeaderVersion, HeaderID, HeaderKind, HeaderReplyTo, HeaderContentType}},
		{"notify", "cli", KindNotify, "", ctx, nil, false,
			[]string{HeaderVersion, HeaderID, HeaderKind, HeaderFrom, HeaderContentType}},
		{"method and headers", "cli", KindRequest, "replies", ctx,
			[]CallOption{WithMethod("get"), WithHeader("x-a", "1"), WithHeader("rpc-id", "forged"), WithHeader("x-empty", ""), WithHeader("x-b", "2")}, false,
			[]string{HeaderVersion, HeaderID, HeaderKind, HeaderMethod, HeaderFrom, HeaderReplyTo, HeaderTimeoutMs, HeaderContentType, "x-a", "x-b"}},
		{"observed", "cli", KindRequest, "replies", ctx, nil, true,
			[]string{HeaderVersion, HeaderID, HeaderKind, HeaderFrom, HeaderReplyTo, HeaderTimeoutMs, HeaderContentType}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &Client{cfg: clientConfig{name: tc.from}}
			if tc.observed {
				c.cfg.observer = nopObserver{}
			}
			cc, err := newCallConfig(tc.opts)
			require.NoError(t, err)
			m := c.request(tc.ctx, time.Now(), "svc", "id-1", tc.kind, tc.replyTo, []byte(`{}`), &cc)
			keys := make([]string, len(m.Headers))
			for i, h := range m.Headers {
				keys[i] = h.Key
			}
			assert.Equal(t, tc.want, keys)
			spare := 0
			if tc.observed {
				spare = 1
			}
			assert.Equal(t, len(m.Headers)+spare, cap(m.Headers), "room for exactly what is written")
		})
	}
}

// nopObserver observes nothing.
type nopObserver struct{}

func (nopObserver) HandleStarted(ctx context.Context, _ *Request) (context.Context, string, func(error)) {
	return ctx, "", func(error) {}
}

func (nopObserver) Counted(Event) {}

func (nopObserver) CallStarted(context.Context, *transport.Message) func(*Reply, error) {
	return func(*Reply, error) {}
}
