package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/xuri/excelize/v2"

	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/transport"
)

func TestParseRange(t *testing.T) {
	t.Parallel()
	utc := func(s string) time.Time {
		v, err := time.Parse(timeLayout, s)
		require.NoError(t, err)
		return v
	}
	ok := []struct {
		name     string
		req      ReportRequest
		from, to time.Time
	}{
		{"dates: to takes its whole day", ReportRequest{"2026-10-26", "2026-11-26"}, utc("2026-10-26T00:00:00Z"), utc("2026-11-26T23:59:59Z")},
		{"one day", ReportRequest{"2026-11-26", "2026-11-26"}, utc("2026-11-26T00:00:00Z"), utc("2026-11-26T23:59:59Z")},
		{"Laravel now() JSON", ReportRequest{"2026-10-26T10:20:30.000000Z", "2026-11-26T10:20:30.123456Z"}, utc("2026-10-26T10:20:30Z"), utc("2026-11-26T10:20:30Z")},
		{"offset is turned into UTC", ReportRequest{"2026-10-26T02:00:00+02:00", "2026-10-27T00:00:00Z"}, utc("2026-10-26T00:00:00Z"), utc("2026-10-27T00:00:00Z")},
		{"date and time", ReportRequest{"2026-10-26 08:00:00", "2026-10-26 09:00:00"}, utc("2026-10-26T08:00:00Z"), utc("2026-10-26T09:00:00Z")},
		{"spaces trimmed", ReportRequest{" 2026-10-26 ", "2026-10-27\n"}, utc("2026-10-26T00:00:00Z"), utc("2026-10-27T23:59:59Z")},
	}
	for _, c := range ok {
		t.Run(c.name, func(t *testing.T) {
			from, to, err := parseRange(c.req)
			require.NoError(t, err)
			assert.Equal(t, c.from, from)
			assert.Equal(t, c.to, to)
		})
	}
	bad := []struct {
		name, msg string
		req       ReportRequest
	}{
		{"from after to", "from 2026-11-01 is after to 2026-10-01", ReportRequest{"2026-11-01", "2026-10-01"}},
		{"unparsable from", `from: cannot parse "yesterday": want YYYY-MM-DD, YYYY-MM-DD HH:MM:SS or RFC 3339`, ReportRequest{"yesterday", "2026-10-01"}},
		{"unparsable to", `to: cannot parse "2026-13-01": want YYYY-MM-DD, YYYY-MM-DD HH:MM:SS or RFC 3339`, ReportRequest{"2026-10-01", "2026-13-01"}},
		{"missing from", "from: missing date", ReportRequest{"", "2026-10-01"}},
		{"missing to", "to: missing date", ReportRequest{"2026-10-01", " "}},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := parseRange(c.req)
			require.Error(t, err)
			assert.Equal(t, rpc.CodeInvalidArgument, rpc.CodeOf(err))
			var re *rpc.Error
			require.ErrorAs(t, err, &re)
			assert.Equal(t, c.msg, re.Message())
		})
	}
}

// sqlTotals is the test's own account of a period: its own query on the
// worker's database file, not the worker's code.
type sqlTotals struct {
	Rows     int
	Quantity int64
	Cents    int64
}

func querySQLTotals(t *testing.T, dbPath string, from, to time.Time) sqlTotals {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+dbPath+"?mode=ro")
	require.NoError(t, err)
	defer db.Close()
	var tot sqlTotals
	require.NoError(t, db.QueryRow(`
		SELECT COUNT(*), COALESCE(SUM(quantity), 0), COALESCE(SUM(quantity * unit_price_cents), 0)
		FROM sales WHERE sold_at >= ? AND sold_at <= ?`,
		from.UTC().Format("2006-01-02T15:04:05Z"), to.UTC().Format("2006-01-02T15:04:05Z")).Scan(&tot.Rows, &tot.Quantity, &tot.Cents))
	return tot
}

// checkWorkbook opens the .xlsx at path again and checks it against want:
// the header, one row per sale, and totals rows whose SUM formulas, cached
// values and recalculated values all equal SQL's totals.
func checkWorkbook(t *testing.T, path string, want sqlTotals) {
	t.Helper()
	f, err := excelize.OpenFile(path)
	require.NoError(t, err)
	defer f.Close()
	assert.Equal(t, []string{sheetSales, sheetSummary}, f.GetSheetList())

	raw := excelize.Options{RawCellValue: true}
	rows, err := f.GetRows(sheetSales, raw)
	require.NoError(t, err)
	require.Len(t, rows, want.Rows+2, "header + one row per sale + totals")
	assert.Equal(t, salesHeader, rows[0])

	// The data rows add up to the SQL totals too.
	var qty int64
	var amount float64
	for _, r := range rows[1 : len(rows)-1] {
		q, err := strconv.ParseInt(r[6], 10, 64)
		require.NoError(t, err)
		a, err := strconv.ParseFloat(r[8], 64)
		require.NoError(t, err)
		qty += q
		amount += a
	}
	assert.Equal(t, want.Quantity, qty)
	assert.InDelta(t, float64(want.Cents)/100, amount, 0.005)

	n := len(rows) // the totals row
	assert.Equal(t, "Total", rows[n-1][0])
	for _, c := range []struct {
		sheet, col string
		row        int
		formula    string
		want       float64
		shown      string
	}{
		{sheetSales, salesQtyCol, n, sumFormula(salesQtyCol, n-1), float64(want.Quantity), thousands(want.Quantity)},
		{sheetSales, salesAmountCol, n, sumFormula(salesAmountCol, n-1), float64(want.Cents) / 100, moneyText(want.Cents)},
	} {
		ref := c.col + strconv.Itoa(c.row)
		formula, err := f.GetCellFormula(c.sheet, ref)
		require.NoError(t, err)
		assert.Equal(t, c.formula, formula, "%s!%s formula", c.sheet, ref)
		cached, err := f.GetCellValue(c.sheet, ref, raw)
		require.NoError(t, err)
		got, err := strconv.ParseFloat(cached, 64)
		require.NoError(t, err, "%s!%s cached value %q", c.sheet, ref, cached)
		assert.InDelta(t, c.want, got, 0.005, "%s!%s cached value", c.sheet, ref)
		calc, err := f.CalcCellValue(c.sheet, ref, raw)
		require.NoError(t, err)
		got, err = strconv.ParseFloat(calc, 64)
		require.NoError(t, err, "%s!%s calculated %q", c.sheet, ref, calc)
		assert.InDelta(t, c.want, got, 0.005, "%s!%s recalculated", c.sheet, ref)
		shown, err := f.GetCellValue(c.sheet, ref)
		require.NoError(t, err)
		assert.Equal(t, c.shown, shown, "%s!%s is a formatted number, not text", c.sheet, ref)
	}
	// Styles: a bold header, dates and money formatted.
	hdr, err := f.GetCellStyle(sheetSales, "A1")
	require.NoError(t, err)
	st, err := f.GetStyle(hdr)
	require.NoError(t, err)
	assert.True(t, st.Font != nil && st.Font.Bold, "bold header")
	if want.Rows > 0 {
		shown, err := f.GetCellValue(sheetSales, "B2")
		require.NoError(t, err)
		assert.Regexp(t, `^\d{4}-\d\d-\d\d \d\d:\d\d$`, shown, "date format")
		shown, err = f.GetCellValue(sheetSales, "I2")
		require.NoError(t, err)
		assert.Regexp(t, `^[\d,]+\.\d\d$`, shown, "money format")
	}

	// The Summary sheet's totals row agrees as well.
	sum, err := f.GetRows(sheetSummary, raw)
	require.NoError(t, err)
	last := len(sum)
	assert.Equal(t, "Total", sum[last-1][0])
	calc, err := f.CalcCellValue(sheetSummary, "D"+strconv.Itoa(last), raw)
	require.NoError(t, err)
	got, err := strconv.ParseFloat(calc, 64)
	require.NoError(t, err)
	assert.InDelta(t, float64(want.Cents)/100, got, 0.005, "summary amount")
	cached, err := f.GetCellValue(sheetSummary, "C"+strconv.Itoa(last), raw)
	require.NoError(t, err)
	assert.Equal(t, strconv.FormatInt(want.Quantity, 10), cached, "summary quantity")
	shown, err := f.GetCellValue(sheetSummary, "D"+strconv.Itoa(last))
	require.NoError(t, err)
	assert.Equal(t, moneyText(want.Cents), shown, "summary amount is a formatted number")
	shown, err = f.GetCellValue(sheetSummary, "C"+strconv.Itoa(last))
	require.NoError(t, err)
	assert.Equal(t, thousands(want.Quantity), shown, "summary quantity is a formatted number")
}

// thousands formats n as #,##0.
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// moneyText formats cents as #,##0.00.
func moneyText(cents int64) string {
	return thousands(cents/100) + fmt.Sprintf(".%02d", cents%100)
}

func lastMonth() (ReportRequest, time.Time, time.Time) {
	today := time.Now().UTC().Truncate(24 * time.Hour)
	from := today.AddDate(0, -1, 0)
	req := ReportRequest{From: from.Format(time.DateOnly), To: today.Format(time.DateOnly)}
	return req, from, today.Add(24*time.Hour - time.Second)
}

// The handler on the memory transport, called with rpc.Call: progress
// notices arrive, and the .xlsx's totals equal the SQL totals.
func TestReportCallTotalsMatchSQL(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.startWorker()
	c, err := rpc.NewClient(h.broker, rpc.WithName("tester"), rpc.WithLogger(h.log))
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })

	req, from, to := lastMonth()
	var mu sync.Mutex
	var stages []string
	ready, err := rpc.Call[ReportReady](ctxT(t, 20*time.Second), c, reportsTopic, req, rpc.WithProgress(func(r *rpc.Reply) {
		var p ReportProgress
		if assert.NoError(t, json.Unmarshal(r.Payload(), &p)) {
			mu.Lock()
			stages = append(stages, p.Stage)
			mu.Unlock()
		}
	}))
	require.NoError(t, err)

	want := querySQLTotals(t, filepath.Join(h.dir, "sales.db"), from, to)
	require.Greater(t, want.Rows, 100, "the seed puts a few hundred sales in the last month")
	assert.Equal(t, want.Rows, ready.Rows)
	assert.InDelta(t, float64(want.Cents)/100, ready.Total, 0.001)
	assert.NotEmpty(t, ready.ReportID)
	assert.NotEmpty(t, ready.Took)
	assert.True(t, filepath.IsAbs(ready.Path))
	assert.Equal(t, h.dir, filepath.Dir(ready.Path))
	checkWorkbook(t, ready.Path, want)

	// Progress notices of a Call share the reply's partition only when the
	// reply topic has one partition, as here: all of them are in by now.
	mu.Lock()
	defer mu.Unlock()
	require.NotEmpty(t, stages)
	assert.Equal(t, "querying", stages[0])
	assert.Contains(t, stages, "writing xlsx")
	assert.Equal(t, "saved", stages[len(stages)-1])
}

// A period without sales gives a valid, empty report.
func TestReportEmptyPeriod(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.startWorker()
	c, err := rpc.NewClient(h.broker, rpc.WithName("tester"), rpc.WithLogger(h.log))
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	ready, err := rpc.Call[ReportReady](ctxT(t, 20*time.Second), c, reportsTopic, ReportRequest{From: "1999-01-01", To: "1999-12-31"})
	require.NoError(t, err)
	assert.Equal(t, 0, ready.Rows)
	assert.Zero(t, ready.Total)
	checkWorkbook(t, ready.Path, sqlTotals{})
}

func TestReportBadRangeIsInvalidArgument(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.startWorker()
	c, err := rpc.NewClient(h.broker, rpc.WithName("tester"), rpc.WithLogger(h.log))
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	for _, req := range []ReportRequest{{"2026-11-01", "2026-10-01"}, {"soon", "2026-10-01"}} {
		_, err = c.Call(ctxT(t, 20*time.Second), reportsTopic, req)
		require.Error(t, err)
		assert.Equal(t, rpc.CodeInvalidArgument, rpc.CodeOf(err), "%v", err)
	}
	// A payload that is not a report request at all.
	_, err = c.Call(ctxT(t, 20*time.Second), reportsTopic, []byte(`[1,2]`))
	assert.Equal(t, rpc.CodeInvalidArgument, rpc.CodeOf(err), "%v", err)
	entries, err := os.ReadDir(h.dir)
	require.NoError(t, err)
	for _, e := range entries {
		assert.NotEqual(t, ".xlsx", filepath.Ext(e.Name()), "no report written for a bad request: %s", e.Name())
	}
}

// The seed's own message — key = the Laravel producer class, value =
// json_encode(['from' => now()->subMonth(), 'to' => now()]), no headers —
// is routed to the same report code and produces a report file.
func TestLegacySeedMessageProducesReport(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.startWorker()
	now := time.Now().UTC()
	from := now.AddDate(0, -1, 0)
	value := `{"from":"` + from.Format("2006-01-02T15:04:05.000000Z") + `","to":"` + now.Format("2006-01-02T15:04:05.000000Z") + `"}`
	_, err := h.broker.Produce(ctxT(t, 5*time.Second), transport.Message{Topic: reportsTopic, Key: legacyProducer, Value: []byte(value)})
	require.NoError(t, err)

	var path string
	require.Eventually(t, func() bool {
		matches, err := filepath.Glob(filepath.Join(h.dir, "sales_*.xlsx"))
		require.NoError(t, err)
		if len(matches) == 1 {
			path = matches[0]
		}
		return path != ""
	}, 15*time.Second, 10*time.Millisecond, "no report file written for the legacy message")
	checkWorkbook(t, path, querySQLTotals(t, filepath.Join(h.dir, "sales.db"), from.Truncate(time.Second), now.Truncate(time.Second)))
	require.Eventually(t, func() bool {
		return containsAll(h.logs.String(), "legacy report ready", `producer=App\Http\Controllers\ReportsController`, "path="+path)
	}, 5*time.Second, 10*time.Millisecond, "the legacy result is logged")

	// A legacy message with a bad range is logged, not lost silently.
	_, err = h.broker.Produce(ctxT(t, 5*time.Second), transport.Message{Topic: reportsTopic, Key: legacyProducer, Value: []byte(`{"from":"2026-11-01","to":"2026-10-01"}`)})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		return containsAll(h.logs.String(), "legacy report failed", "code=invalid_argument", "from 2026-11-01 is after to 2026-10-01")
	}, 5*time.Second, 10*time.Millisecond)
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// The seed is deterministic: two databases seeded the same day hold the
// same sales.
func TestSeedIsDeterministic(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	now := time.Date(2026, 11, 26, 15, 4, 5, 0, time.UTC)
	var sums [2]sqlTotals
	for i := range sums {
		path := filepath.Join(dir, "s"+strconv.Itoa(i)+".db")
		db, err := openSalesDB(context.Background(), path, now.Add(time.Duration(i)*time.Hour))
		require.NoError(t, err)
		require.NoError(t, db.Close())
		sums[i] = querySQLTotals(t, path, now.AddDate(-1, 0, 0), now)
	}
	assert.Equal(t, sums[0], sums[1])
	assert.Equal(t, seedSales, sums[0].Rows)

	// Opening again does not seed twice.
	path := filepath.Join(dir, "s0.db")
	db, err := openSalesDB(context.Background(), path, now.AddDate(0, 1, 0))
	require.NoError(t, err)
	require.NoError(t, db.Close())
	assert.Equal(t, sums[0], querySQLTotals(t, path, now.AddDate(-1, 0, 0), now.AddDate(0, 2, 0)))
}
