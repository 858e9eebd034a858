package rpc

import (
	"strings"
	"testing"
	"time"

	"github.com/kafkarpc/kafkarpc/transport"
)

// FuzzDecodeEnvelope feeds arbitrary headers to the envelope decoder: it
// must never panic, and what it accepts must be consistent.
//
//	go test -run '^$' -fuzz FuzzDecodeEnvelope -fuzztime 60s ./rpc/
func FuzzDecodeEnvelope(f *testing.F) {
	f.Add("rpc-v=1;rpc-id=abc;rpc-kind=request;rpc-reply-to=web.replies;rpc-timeout-ms=1500", []byte(`{"from":"a"}`), int64(0))
	f.Add("rpc-v=1;rpc-id=abc;rpc-kind=reply;rpc-correlation-id=x;rpc-error-code=not_found;rpc-error=gone", []byte(`null`), int64(1))
	f.Add("content-type=application/json", []byte(`{}`), int64(2))
	f.Add("rpc-v=1;rpc-id=;rpc-kind=progress;rpc-reply-partition=-3;rpc-deadline=99", []byte{0xff}, int64(3))
	f.Add("rpc-v=2", []byte(nil), int64(-1))
	f.Fuzz(func(t *testing.T, spec string, value []byte, ts int64) {
		var hs []transport.Header
		for _, kv := range strings.Split(spec, ";") {
			k, v, _ := strings.Cut(kv, "=")
			hs = append(hs, transport.Header{Key: k, Value: v})
		}
		m := &transport.Message{Topic: "t", Value: value, Headers: hs, Time: time.UnixMilli(ts)}
		env, err := decodeEnvelope(m)
		if err != nil {
			return
		}
		if env.legacy {
			for _, h := range hs {
				if strings.HasPrefix(h.Key, "rpc-") {
					t.Fatalf("legacy with rpc header %q", h.Key)
				}
			}
			return
		}
		if env.id == "" {
			t.Fatal("accepted without an id")
		}
		switch env.kind {
		case KindRequest, KindNotify:
		case KindReply, KindProgress:
			if env.correlationID == "" {
				t.Fatal("reply accepted without a correlation id")
			}
			r := replyFrom(m, &env)
			if env.errCode != "" && r.Err == nil {
				t.Fatal("error code without an error")
			}
		default:
			t.Fatalf("accepted kind %q", env.kind)
		}
		if env.timeout < 0 || env.replyPartition < -1 {
			t.Fatalf("negative timeout %v or partition %d", env.timeout, env.replyPartition)
		}
		_ = env.deadlineFor(m, time.Now(), 0)
	})
}
