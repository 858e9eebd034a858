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

// Users with rights, read from a users file: a producer limited to one
// topic is refused another with 403.
func ExampleWithUsers() {
	users, err := restserver.ReadUsers(strings.NewReader(`# one JSON object a line
{"name": "orders-app", "password": "s3cret", "produce": ["orders"], "consume": ["orders.*"]}
{"name": "ops", "password": "0ps", "admin": true}
`))
	if err != nil {
		panic(err)
	}
	broker, err := memory.New(memory.WithTopic("orders", 1), memory.WithTopic("payroll", 1))
	if err != nil {
		panic(err)
	}
	defer broker.Close()
	srv, err := restserver.New(restserver.NewMemoryBackend(broker),
		restserver.WithUsers(users...), restserver.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		panic(err)
	}
	defer srv.Close()
	ts := httptest.NewServer(srv)
	defer ts.Close()

	for _, topic := range []string{"orders", "payroll"} {
		r, _ := http.NewRequest("POST", ts.URL+"/produce/"+topic, strings.NewReader(`{"value":"x","timestamp":1637745824883}`))
		r.SetBasicAuth("orders-app", "s3cret")
		resp, err := ts.Client().Do(r)
		if err != nil {
			panic(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Println(resp.StatusCode, string(b))
	}
	// Output:
	// 200 [{"topic":"orders","partition":0,"offset":0,"timestamp":1637745824883}]
	// 403 {"error":"user \"orders-app\" may not produce to topic \"payroll\"","status":403}
}
