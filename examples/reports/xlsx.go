package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/xuri/excelize/v2"
)

// Sheet names and layout of the report workbook.
const (
	sheetSales   = "Sales"
	sheetSummary = "Summary"
)

// salesHeader is the first row of the Sales sheet. The columns of the totals
// row (quantity and amount) are named by salesQtyCol and salesAmountCol.
var salesHeader = []string{"Order", "Sold at (UTC)", "Customer", "Region", "SKU", "Product", "Quantity", "Unit price", "Amount"}

const (
	salesQtyCol    = "G"
	salesAmountCol = "I"
)

// reportInfo is what the Summary sheet says about the report itself.
type reportInfo struct {
	ID        string
	From, To  time.Time
	Generated time.Time
}

// writeReport writes d as an .xlsx workbook at path: a Sales sheet with one
// row per sale and a totals row, and a Summary sheet with the period and the
// totals per region. Totals are SUM formulas that also carry their computed
// value, so a reader that does not recalculate still shows the right number.
// The file appears at path only when complete (written to a temporary name,
// then renamed). progress, when not nil, is called as rows are written.
func writeReport(ctx context.Context, path string, info reportInfo, d *salesData, progress func(written int)) (err error) {
	f := excelize.NewFile()
	defer f.Close()
	st, err := newReportStyles(f)
	if err != nil {
		return err
	}
	if err := f.SetSheetName("Sheet1", sheetSales); err != nil {
		return err
	}
	if err := writeSalesSheet(ctx, f, st, d, progress); err != nil {
		return err
	}
	if err := writeSummarySheet(f, st, info, d); err != nil {
		return err
	}
	// Ask spreadsheet programs to recalculate the formulas when the file opens.
	full := true
	if err := f.SetCalcProps(&excelize.CalcPropsOptions{FullCalcOnLoad: &full}); err != nil {
		return err
	}
	f.SetActiveSheet(0)

	tmp, err := os.CreateTemp(filepath.Dir(path), ".report-*.xlsx")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err = f.WriteTo(tmp); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	if err = os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

type reportStyles struct {
	header, date, text, integer, money, totalLabel, totalInt, totalMoney int
}

func newReportStyles(f *excelize.File) (reportStyles, error) {
	var st reportStyles
	moneyFmt := "#,##0.00"
	topBorder := []excelize.Border{{Type: "top", Color: "000000", Style: 2}}
	defs := []struct {
		dst   *int
		style excelize.Style
	}{
		{&st.header, excelize.Style{
			Font:      &excelize.Font{Bold: true, Color: "FFFFFF"},
			Fill:      excelize.Fill{Type: "pattern", Pattern: 1, Color: []string{"305496"}},
			Alignment: &excelize.Alignment{Horizontal: "center", Vertical: "center"},
		}},
		{&st.date, excelize.Style{CustomNumFmt: ptr("yyyy-mm-dd hh:mm")}},
		{&st.text, excelize.Style{}},
		{&st.integer, excelize.Style{NumFmt: 3}}, // #,##0
		{&st.money, excelize.Style{CustomNumFmt: &moneyFmt}},
		{&st.totalLabel, excelize.Style{Font: &excelize.Font{Bold: true}, Border: topBorder}},
		{&st.totalInt, excelize.Style{Font: &excelize.Font{Bold: true}, Border: topBorder, NumFmt: 3}},
		{&st.totalMoney, excelize.Style{Font: &excelize.Font{Bold: true}, Border: topBorder, CustomNumFmt: &moneyFmt}},
	}
	for _, d := range defs {
		id, err := f.NewStyle(&d.style)
		if err != nil {
			return st, err
		}
		*d.dst = id
	}
	return st, nil
}

func ptr[T any](v T) *T { return &v }

func cents(c int64) float64 { return float64(c) / 100 }

func writeSalesSheet(ctx context.Context, f *excelize.File, st reportStyles, d *salesData, progress func(int)) error {
	sw, err := f.NewStreamWriter(sheetSales)
	if err != nil {
		return err
	}
	for col, w := range []float64{9, 18, 22, 10, 9, 18, 10, 12, 14} {
		if err := sw.SetColWidth(col+1, col+1, w); err != nil {
			return err
		}
	}
	if err := sw.SetPanes(&excelize.Panes{Freeze: true, YSplit: 1, TopLeftCell: "A2", ActivePane: "bottomLeft"}); err != nil {
		return err
	}
	header := make([]any, len(salesHeader))
	for i, h := range salesHeader {
		header[i] = excelize.Cell{StyleID: st.header, Value: h}
	}
	if err := sw.SetRow("A1", header, excelize.RowOpts{Height: 20}); err != nil {
		return err
	}
	quarter := 1 // progress at each quarter of a report of 100 rows or more
	for i, r := range d.Rows {
		if i%64 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if len(d.Rows) >= 100 && quarter < 4 && i == len(d.Rows)*quarter/4 {
			quarter++
			if progress != nil {
				progress(i)
			}
		}
		cell, _ := excelize.CoordinatesToCellName(1, i+2)
		if err := sw.SetRow(cell, []any{
			excelize.Cell{StyleID: st.text, Value: r.ID},
			excelize.Cell{StyleID: st.date, Value: r.SoldAt},
			excelize.Cell{StyleID: st.text, Value: r.Customer},
			excelize.Cell{StyleID: st.text, Value: r.Region},
			excelize.Cell{StyleID: st.text, Value: r.SKU},
			excelize.Cell{StyleID: st.text, Value: r.Product},
			excelize.Cell{StyleID: st.integer, Value: r.Quantity},
			excelize.Cell{StyleID: st.money, Value: cents(r.UnitCents)},
			excelize.Cell{StyleID: st.money, Value: cents(r.AmountCent)},
		}); err != nil {
			return err
		}
	}
	last := len(d.Rows) + 1 // the last data row (1 when there are none)
	totals := make([]any, len(salesHeader))
	for i := range totals {
		totals[i] = excelize.Cell{StyleID: st.totalLabel}
	}
	totals[0] = excelize.Cell{StyleID: st.totalLabel, Value: "Total"}
	totals[6] = excelize.Cell{StyleID: st.totalInt, Value: d.TotalQuantity, Formula: sumFormula(salesQtyCol, last)}
	totals[8] = excelize.Cell{StyleID: st.totalMoney, Value: cents(d.TotalCents), Formula: sumFormula(salesAmountCol, last)}
	cell, _ := excelize.CoordinatesToCellName(1, last+1)
	if err := sw.SetRow(cell, totals); err != nil {
		return err
	}
	if err := sw.Flush(); err != nil {
		return err
	}
	if progress != nil {
		progress(len(d.Rows))
	}
	return nil
}

// sumFormula sums column col over the data rows 2..last. With no data rows
// (last == 1) the range is empty and the formula is a plain 0.
func sumFormula(col string, last int) string {
	if last < 2 {
		return "0"
	}
	return fmt.Sprintf("SUM(%s2:%s%d)", col, col, last)
}

func writeSummarySheet(f *excelize.File, st reportStyles, info reportInfo, d *salesData) error {
	if _, err := f.NewSheet(sheetSummary); err != nil {
		return err
	}
	// A stream writer here too: unlike SetCellFormula, it stores a formula's
	// cached value as a number, which spreadsheet programs show formatted
	// without recalculating.
	sw, err := f.NewStreamWriter(sheetSummary)
	if err != nil {
		return err
	}
	if err := sw.SetColWidth(1, 4, 18); err != nil {
		return err
	}
	row := 0
	next := func() string {
		row++
		cell, _ := excelize.CoordinatesToCellName(1, row)
		return cell
	}
	meta := []excelize.Cell{
		{StyleID: st.text, Value: info.ID},
		{StyleID: st.date, Value: info.From},
		{StyleID: st.date, Value: info.To},
		{StyleID: st.date, Value: info.Generated},
		{StyleID: st.integer, Value: len(d.Rows)},
	}
	for i, label := range []string{"Report", "From (UTC)", "To (UTC)", "Generated (UTC)", "Sales"} {
		if err := sw.SetRow(next(), []any{excelize.Cell{StyleID: st.totalLabel, Value: label}, meta[i]}); err != nil {
			return err
		}
	}
	row++ // a blank row
	header := []any{}
	for _, h := range []string{"Region", "Orders", "Quantity", "Amount"} {
		header = append(header, excelize.Cell{StyleID: st.header, Value: h})
	}
	if err := sw.SetRow(next(), header); err != nil {
		return err
	}
	first := row + 1
	var orders int64
	for _, r := range d.Regions {
		orders += r.Orders
		if err := sw.SetRow(next(), []any{
			excelize.Cell{StyleID: st.text, Value: r.Region},
			excelize.Cell{StyleID: st.integer, Value: r.Orders},
			excelize.Cell{StyleID: st.integer, Value: r.Quantity},
			excelize.Cell{StyleID: st.money, Value: cents(r.AmountCents)},
		}); err != nil {
			return err
		}
	}
	last := row
	sum := func(col string) string {
		if last < first {
			return "0"
		}
		return fmt.Sprintf("SUM(%s%d:%s%d)", col, first, col, last)
	}
	if err := sw.SetRow(next(), []any{
		excelize.Cell{StyleID: st.totalLabel, Value: "Total"},
		excelize.Cell{StyleID: st.totalInt, Value: orders, Formula: sum("B")},
		excelize.Cell{StyleID: st.totalInt, Value: d.TotalQuantity, Formula: sum("C")},
		excelize.Cell{StyleID: st.totalMoney, Value: cents(d.TotalCents), Formula: sum("D")},
	}); err != nil {
		return err
	}
	return sw.Flush()
}
