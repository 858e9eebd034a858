package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/transport"
)

// Server two: the reports worker. It serves the "reports" topic: each request
// runs the sales queries in one database transaction, writes an .xlsx report
// and answers with a completion notice.

const (
	// reportsTopic is the topic server one sends report requests to.
	reportsTopic = "reports"
	// legacyProducer is the key the seed's Laravel app writes on its report
	// requests (its producer class): value {"from","to"}, no rpc headers.
	legacyProducer = `App\Http\Controllers\ReportsController`
	// workerName is server two's rpc name and consumer group.
	workerName = "reports-worker"
)

// ReportRequest asks for the sales report of a period. Dates are YYYY-MM-DD
// (a whole day: "to" includes its day), RFC 3339 timestamps (as Laravel's
// now() serializes), or "YYYY-MM-DD HH:MM:SS" (UTC).
type ReportRequest struct {
	From string `json:"from"`
	To   string `json:"to"`
}

// ReportProgress is a progress notice of a report being made.
type ReportProgress struct {
	// Stage is "querying", "writing xlsx" or "saved".
	Stage string `json:"stage"`
	// Rows is the number of sales in the report, once known.
	Rows int `json:"rows,omitempty"`
	// Written is the number of rows written so far in stage "writing xlsx".
	Written int `json:"written,omitempty"`
	// Message says the same for people.
	Message string `json:"message"`
}

// ReportReady is the completion notice of a report.
type ReportReady struct {
	ReportID string  `json:"report_id"`
	Path     string  `json:"path"`
	Rows     int     `json:"rows"`
	Total    float64 `json:"total"`
	Took     string  `json:"took"`
}

// worker makes reports. It is safe for concurrent use: the rpc server runs
// several handlers at once.
type worker struct {
	sales *salesDB
	dir   string
	log   *slog.Logger
	now   func() time.Time
}

// newReportsServer returns server two: an rpc server on t named
// reports-worker with the rpc route and the legacy route of topic reports.
// Run it with Serve.
func newReportsServer(t transport.Transport, w *worker, opts ...rpc.ServerOption) (*rpc.Server, error) {
	base := []rpc.ServerOption{
		rpc.WithName(workerName),
		rpc.WithConcurrency(4),
		rpc.WithLogger(w.log),
		rpc.WithMiddleware(rpc.LogRequests(w.log)),
	}
	s, err := rpc.NewServer(t, append(base, opts...)...)
	if err != nil {
		return nil, err
	}
	s.HandleFunc(reportsTopic, w.handle)
	s.HandleLegacy(legacyProducer, reportsTopic, w.handleLegacy)
	s.HandleUnhandled(func(ctx context.Context, r *rpc.Request) error {
		// The seed's UnhandledKafkaEvent: log what nobody routes.
		w.log.Error("unhandled record", "topic", r.Topic, "key", r.Key, "from", r.From, "legacy", r.Legacy)
		return nil
	})
	return s, nil
}

// handle is the rpc route: the request id is the report id, and progress
// notices go back to the caller.
func (w *worker) handle(ctx context.Context, r *rpc.Request) (any, error) {
	var req ReportRequest
	if err := r.Decode(&req); err != nil {
		return nil, err
	}
	return w.report(ctx, r.ID, req, func(p ReportProgress) {
		if err := rpc.Progress(ctx, p); err != nil {
			w.log.Warn("progress notice not sent", "report_id", r.ID, "stage", p.Stage, "err", err)
		}
	})
}

// handleLegacy is the seed's route: key App\Http\Controllers\ReportsController
// on topic reports, value {"from","to"}, no envelope. Nobody waits for a
// reply, so the result is logged.
func (w *worker) handleLegacy(ctx context.Context, r *rpc.Request) (any, error) {
	var req ReportRequest
	if err := r.Decode(&req); err != nil {
		w.log.Error("legacy report request rejected", "producer", r.From, "offset", r.Message.Offset, "err", err)
		return nil, err
	}
	id := uuid.Must(uuid.NewV7()).String()
	res, err := w.report(ctx, id, req, nil)
	if err != nil {
		w.log.Error("legacy report failed", "producer", r.From, "report_id", id, "code", rpc.CodeOf(err).String(), "err", err)
		return nil, err
	}
	w.log.Info("legacy report ready", "producer", r.From, "report_id", id, "path", res.Path, "rows", res.Rows, "total", res.Total, "took", res.Took)
	return res, nil
}

// report makes one report: validate the period, query, write the .xlsx.
// progress may be nil.
func (w *worker) report(ctx context.Context, id string, req ReportRequest, progress func(ReportProgress)) (*ReportReady, error) {
	start := time.Now()
	if progress == nil {
		progress = func(ReportProgress) {}
	}
	from, to, err := parseRange(req)
	if err != nil {
		return nil, err
	}
	progress(ReportProgress{Stage: "querying", Message: fmt.Sprintf("querying sales from %s to %s", from.Format(timeLayout), to.Format(timeLayout))})
	data, err := w.sales.query(ctx, from, to)
	if err != nil {
		return nil, rpc.NewError(codeFor(ctx, rpc.CodeInternal), fmt.Errorf("report %s: %w", id, err))
	}
	rows := len(data.Rows)
	progress(ReportProgress{Stage: "writing xlsx", Rows: rows, Message: fmt.Sprintf("writing xlsx: %d rows", rows)})

	path := filepath.Join(w.dir, reportFileName(id, from, to))
	info := reportInfo{ID: id, From: from, To: to, Generated: w.now().UTC()}
	err = writeReport(ctx, path, info, data, func(written int) {
		if written < rows {
			progress(ReportProgress{Stage: "writing xlsx", Rows: rows, Written: written, Message: fmt.Sprintf("writing xlsx: %d of %d rows", written, rows)})
		}
	})
	if err != nil {
		return nil, rpc.NewError(codeFor(ctx, rpc.CodeInternal), fmt.Errorf("report %s: write xlsx: %w", id, err))
	}
	progress(ReportProgress{Stage: "saved", Rows: rows, Written: rows, Message: fmt.Sprintf("saved %s (%d rows)", filepath.Base(path), rows)})
	return &ReportReady{
		ReportID: id,
		Path:     path,
		Rows:     rows,
		Total:    cents(data.TotalCents),
		Took:     time.Since(start).Round(time.Millisecond).String(),
	}, nil
}

// codeFor is the code of a failure: the context's when it ended, else def.
func codeFor(ctx context.Context, def rpc.Code) rpc.Code {
	if ctx.Err() != nil {
		return rpc.CodeOf(ctx.Err())
	}
	return def
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// reportFileName is the .xlsx name of report id: sales_FROM_TO_ID.xlsx.
func reportFileName(id string, from, to time.Time) string {
	name := fmt.Sprintf("sales_%s_%s_%s.xlsx", from.Format("20060102"), to.Format("20060102"), id)
	return unsafeName.ReplaceAllString(name, "-")
}

// parseRange parses and checks a report period. The result is inclusive at
// both ends, in UTC; a date-only "to" ends at 23:59:59 of its day.
func parseRange(req ReportRequest) (from, to time.Time, err error) {
	from, _, err = parseDate("from", req.From)
	if err != nil {
		return from, to, err
	}
	to, dateOnly, err := parseDate("to", req.To)
	if err != nil {
		return from, to, err
	}
	if dateOnly {
		to = to.Add(24*time.Hour - time.Second)
	}
	if from.After(to) {
		return from, to, rpc.Errorf(rpc.CodeInvalidArgument, "from %s is after to %s", req.From, req.To)
	}
	return from, to, nil
}

// dateLayouts are the accepted forms of a date, most specific first.
var dateLayouts = []struct {
	layout   string
	dateOnly bool
}{
	{time.RFC3339Nano, false}, // also takes RFC 3339 without fraction
	{time.DateTime, false},
	{time.DateOnly, true},
}

func parseDate(field, s string) (time.Time, bool, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, false, rpc.Errorf(rpc.CodeInvalidArgument, "%s: missing date", field)
	}
	for _, l := range dateLayouts {
		if t, err := time.Parse(l.layout, s); err == nil {
			return t.UTC().Truncate(time.Second), l.dateOnly, nil
		}
	}
	return time.Time{}, false, rpc.Errorf(rpc.CodeInvalidArgument, "%s: cannot parse %q: want YYYY-MM-DD, YYYY-MM-DD HH:MM:SS or RFC 3339", field, s)
}

// newWorker opens (and on first start seeds) the sales database at dbPath
// and returns a worker writing reports to dir, which it creates.
func newWorker(ctx context.Context, dbPath, dir string, log *slog.Logger) (*worker, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	sales, err := openSalesDB(ctx, dbPath, time.Now())
	if err != nil {
		return nil, err
	}
	return &worker{sales: sales, dir: dir, log: log, now: time.Now}, nil
}

// Close closes the sales database.
func (w *worker) Close() error { return w.sales.Close() }
