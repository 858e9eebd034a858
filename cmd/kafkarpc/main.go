// Command kafkarpc calls, serves and watches kafkarpc services from a shell:
// the NATS CLI's "nats req", "nats reply" and "nats sub" for RPC over Kafka
// topics, plus dead-letter tooling and a load generator.
//
// Usage:
//
//	kafkarpc call    TOPIC [JSON|-]   send a request, print the reply
//	kafkarpc notify  TOPIC [JSON|-]   send a notification (no reply)
//	kafkarpc send    TOPIC [JSON|-]   send a long job; --wait shows its progress
//	kafkarpc serve   TOPIC...         answer requests (--echo or --exec CMD)
//	kafkarpc tail    TOPIC...         print the envelopes flowing through topics
//	kafkarpc dlq     list|show|replay TOPIC   inspect and replay dead letters
//	kafkarpc bench   TOPIC [JSON|-]   calls/s and latency against a live service
//
// Every subcommand takes --help, which shows its flags and an example.
//
// # Connecting
//
// The command speaks the Upstash Kafka REST API (transport/upstash), to
// kafka-rest or any wire-compatible server: --url, or the variables
// UPSTASH_KAFKA_REST_URL, UPSTASH_KAFKA_REST_USERNAME and
// UPSTASH_KAFKA_REST_PASSWORD (also KAFKA_URL, KAFKA_USERNAME and
// KAFKA_PASSWORD). Prefer the variables for credentials: flags show in the
// process list.
//
// It speaks Kafka directly (transport/kafka, franz-go) with --brokers
// host:port,... (and --kafka-sasl-*, --kafka-tls-* flags), or when
// KAFKA_BROKERS is set and no REST endpoint is named (the KAFKA_SASL_* and
// KAFKA_TLS_* variables then apply). The transport is chosen in one
// function, openTransport.
//
// # Output and exit codes
//
// Output is readable text by default; --json prints one JSON object a line
// on stdout, for scripts. Diagnostics go to stderr as one line.
// The exit code is 0 when all went well, 1 when the service answered with an
// error (or no reply came in time: the request was sent), with the error
// code printed, and 2 for a usage error or a transport error (unknown topic,
// refused credentials, unreachable server, bad JSON argument).
//
// # Why the standard flag package
//
// The command has seven subcommands with a handful of flags each. The
// standard flag package, one FlagSet per subcommand, covers that with no new
// dependency for the module (cobra would add spf13/pflag and more; urfave/cli
// its own tree), and its "-flag" and "--flag" forms are both accepted.
// What flag lacks, flags after positional arguments ("call reports {} --method x"),
// is a ten-line loop here (parseInterleaved).
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Exit codes.
const (
	exitOK    = 0
	exitReply = 1 // the service answered with an error, or no reply came
	exitUsage = 2 // bad command line or input, or a transport error
)

// exitProgName starts every diagnostic line.
const exitProgName = "kafkarpc"

// commands lists the subcommands in the order the usage shows them.
var commands = []*command{cmdCall, cmdNotify, cmdSend, cmdServe, cmdTail, cmdDLQ, cmdBench}

// run is the whole command, with its environment as parameters so that
// tests and main share it. It returns the exit code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		usage(stdout)
		return exitOK
	}
	for _, c := range commands {
		if c.name == args[0] {
			return c.exec(ctx, args[1:], stdin, stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "%s: unknown command %q (run %s --help)\n", exitProgName, args[0], exitProgName)
	return exitUsage
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "Usage: %s COMMAND [flags] [args]\n\nCommands:\n", exitProgName)
	for _, c := range commands {
		fmt.Fprintf(w, "  %-7s %s\n", c.name, c.short)
	}
	fmt.Fprintf(w, "\nConnect with --url or UPSTASH_KAFKA_REST_URL (and _USERNAME, _PASSWORD),\nor to Kafka directly with --brokers or KAFKA_BROKERS.\n")
	fmt.Fprintf(w, "Exit codes: 0 ok, 1 error reply (code printed), 2 usage or transport error.\n")
	fmt.Fprintf(w, "Run '%s COMMAND --help' for a command's flags and an example.\n", exitProgName)
}
