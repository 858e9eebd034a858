package rpc_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

type ReportRequest struct {
	From string `json:"from"`
	To   string `json:"to"`
}

type ReportReady struct {
	ReportID string `json:"report_id"`
	Rows     int    `json:"rows"`
}

var quiet = rpc.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))

// serve runs s in the background; the returned func stops it and waits.
func serve(s *rpc.Server) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	return func() { cancel(); <-done }
}

func ExampleHandle() {
	b, err := memory.New()
	if err != nil {
		panic(err)
	}
	defer b.Close()

	s, err := rpc.NewServer(b, rpc.WithName("reports-worker"), quiet)
	if err != nil {
		panic(err)
	}
	rpc.Handle(s, "reports", func(ctx context.Context, req ReportRequest) (ReportReady, error) {
		if req.From > req.To {
			return ReportReady{}, rpc.Errorf(rpc.CodeInvalidArgument, "from %s is after to %s", req.From, req.To)
		}
		return ReportReady{ReportID: "r-1", Rows: 42}, nil
	})
	defer serve(s)()

	c, err := rpc.NewClient(b, rpc.WithName("web"), quiet)
	if err != nil {
		panic(err)
	}
	defer c.Close()
	_, err = c.Call(context.Background(), "reports", ReportRequest{From: "2026-11-01", To: "2026-10-01"})
	fmt.Println(rpc.CodeOf(err), err)
	// Output: invalid_argument invalid_argument: from 2026-11-01 is after to 2026-10-01
}

func ExampleCall() {
	b, err := memory.New()
	if err != nil {
		panic(err)
	}
	defer b.Close()

	s, _ := rpc.NewServer(b, rpc.WithName("reports-worker"), quiet)
	rpc.Handle(s, "reports", func(ctx context.Context, req ReportRequest) (ReportReady, error) {
		return ReportReady{ReportID: "r-" + req.From, Rows: 42}, nil
	})
	defer serve(s)()

	c, _ := rpc.NewClient(b, rpc.WithName("web"), quiet)
	defer c.Close()
	out, err := rpc.Call[ReportReady](context.Background(), c, "reports", ReportRequest{From: "2026-10-26", To: "2026-11-26"})
	if err != nil {
		panic(err)
	}
	fmt.Println(out.ReportID, out.Rows)
	// Output: r-2026-10-26 42
}

func ExampleClient_Notify() {
	b, err := memory.New()
	if err != nil {
		panic(err)
	}
	defer b.Close()

	got := make(chan string)
	s, _ := rpc.NewServer(b, rpc.WithName("audit"), quiet)
	s.HandleFunc("audit", func(ctx context.Context, r *rpc.Request) (any, error) {
		got <- fmt.Sprintf("%s from %s (key %s): %s", r.Kind, r.From, r.Key, r.Payload())
		return nil, nil
	})
	defer serve(s)()

	c, _ := rpc.NewClient(b, rpc.WithName("web"), quiet)
	defer c.Close()
	if err := c.Notify(context.Background(), "audit", map[string]string{"user": "ada"}, rpc.WithKey("login")); err != nil {
		panic(err)
	}
	fmt.Println(<-got)
	// Output: notify from web (key login): {"user":"ada"}
}

func ExampleClient_Send() {
	b, err := memory.New()
	if err != nil {
		panic(err)
	}
	defer b.Close()

	s, _ := rpc.NewServer(b, rpc.WithName("reports-worker"), quiet)
	rpc.Handle(s, "reports", func(ctx context.Context, req ReportRequest) (ReportReady, error) {
		_ = rpc.Progress(ctx, "querying")
		return ReportReady{ReportID: "r-9", Rows: 7}, nil
	})
	defer serve(s)()

	c, _ := rpc.NewClient(b, rpc.WithName("web"), quiet)
	defer c.Close()
	done := make(chan struct{})
	_ = c.OnNotice(func(ctx context.Context, r *rpc.Reply) error {
		fmt.Printf("%s: %s\n", r.Kind, r.Payload())
		if r.Kind == rpc.KindReply {
			close(done)
		}
		return nil
	})
	if _, err := c.Send(context.Background(), "reports", ReportRequest{From: "2026-10-26", To: "2026-11-26"}); err != nil {
		panic(err)
	}
	<-done
	// Output:
	// progress: "querying"
	// reply: {"report_id":"r-9","rows":7}
}
