// Command reports is the seed article's scenario as two Go services that talk
// through Kafka with kafkarpc: server one, a web app, asks for an Excel sales
// report; server two, a worker, runs the queries in a database transaction,
// writes the .xlsx, reports its progress and sends a completion notice back.
//
// With no flags it runs everything in one process, with no set-up: an
// Upstash-compatible Kafka REST server on a loopback port (over the embedded
// broker), the worker and the web app each on its own REST client, asks for
// the last month's report, prints the progress and the path of the .xlsx, and
// exits:
//
//	go run ./examples/reports
//
// -serve keeps the web app up instead (open the printed URL). -role worker
// and -role web run one side each, as separate processes, against the REST
// endpoint named by UPSTASH_KAFKA_REST_URL, UPSTASH_KAFKA_REST_USERNAME and
// UPSTASH_KAFKA_REST_PASSWORD. See README.md.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "reports:", err)
		os.Exit(1)
	}
}
