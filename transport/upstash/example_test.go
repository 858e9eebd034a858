package upstash_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"net/http/httptest"
	"time"

	"github.com/kafkarpc/kafkarpc/restserver"
	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/memory"
	"github.com/kafkarpc/kafkarpc/transport/upstash"
)

// The transport talks to any Upstash-compatible REST endpoint; here, the
// project's own REST server over the embedded broker, on loopback.
func Example() {
	broker, err := memory.New()
	if err != nil {
		panic(err)
	}
	defer broker.Close()
	srv, err := restserver.New(restserver.NewMemoryBackend(broker), restserver.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	hs := httptest.NewServer(srv)
	defer hs.Close()

	tr, err := upstash.New(upstash.WithURL(hs.URL)) // plus upstash.WithCredentials(user, pass)
	if err != nil {
		log.Fatal(err)
	}
	defer tr.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := tr.Subscribe(ctx, transport.Subscription{
		Group: "server-two", Topics: []string{"reports"}, Start: transport.StartEarliest,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	out, err := tr.Produce(ctx, transport.Message{
		Topic: "reports", Key: `App\Http\Controllers\ReportsController`, Value: []byte(`{"month":"2025-03"}`),
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("produced to %s at offset %d\n", out[0].Topic, out[0].Offset)

	msgs, err := c.Poll(ctx)
	if err != nil {
		log.Fatal(err)
	}
	for _, m := range msgs {
		fmt.Printf("consumed %s %s\n", m.Key, m.Value)
	}
	if err := c.Commit(ctx, msgs...); err != nil { // stores offset 1: the next to read
		log.Fatal(err)
	}
	// Output:
	// produced to reports at offset 0
	// consumed App\Http\Controllers\ReportsController {"month":"2025-03"}
}

// FromEnv reads UPSTASH_KAFKA_REST_URL, UPSTASH_KAFKA_REST_USERNAME and
// UPSTASH_KAFKA_REST_PASSWORD (or the seed's KAFKA_URL, KAFKA_USERNAME,
// KAFKA_PASSWORD, KAFKA_GROUP, KAFKA_INSTANCE); options given to it win.
func ExampleFromEnv() {
	tr, err := upstash.FromEnv(upstash.WithLogger(slog.Default()), upstash.WithPollWindow(10*time.Second))
	if err != nil {
		log.Fatal(err)
	}
	defer tr.Close()
}
