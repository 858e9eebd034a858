package restserver_test

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/kafkarpc/kafkarpc/restserver"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// An Upstash-compatible server over the embedded broker: produce with the
// SDK's request shape, then consume it back.
func Example() {
	broker, err := memory.New(memory.WithTopic("greetings", 1), memory.WithAutoCreate(false))
	if err != nil {
		panic(err)
	}
	defer broker.Close()
	srv, err := restserver.New(restserver.NewMemoryBackend(broker),
		restserver.WithCredentials("user", "secret"),
		restserver.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		panic(err)
	}
	defer srv.Close()
	ts := httptest.NewServer(srv) // or srv.Serve(listener)
	defer ts.Close()

	post := func(path, body string, hdr ...string) {
		r, _ := http.NewRequest("POST", ts.URL+path, strings.NewReader(body))
		r.SetBasicAuth("user", "secret")
		for i := 0; i+1 < len(hdr); i += 2 {
			r.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := ts.Client().Do(r)
		if err != nil {
			panic(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		fmt.Println(resp.StatusCode, string(b))
	}
	post("/produce", `{"topic":"greetings","value":"hello","timestamp":1637745824883}`)
	post("/consume/mygroup/myconsumer", `{"topic":"greetings","timeout":1000}`, "Kafka-Auto-Offset-Reset", "earliest")
	post("/produce/nope", `{"value":"x"}`)
	// Output:
	// 200 [{"topic":"greetings","partition":0,"offset":0,"timestamp":1637745824883}]
	// 200 [{"topic":"greetings","partition":0,"offset":0,"timestamp":1637745824883,"key":"","value":"hello","headers":[]}]
	// 404 {"error":"produce to \"nope\": unknown topic","status":404}
}
