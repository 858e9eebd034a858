package main

import (
	"context"
	"database/sql"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Retention: the web app deletes reports finished more than
// webConfig.KeepFor ago, their .xlsx and their records, so the reports folder
// does not grow forever. A report still unfinished a day past KeepFor after
// its last change (its worker never answered) goes too. It also deletes old report files it has no record
// of (the legacy route's reports, or files whose records are gone).

// janitor sweeps at start and every SweepEvery until the app closes.
func (a *webApp) janitor() {
	defer close(a.janitorDone)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-a.closing:
		case <-ctx.Done():
		}
		cancel()
	}()
	tick := time.NewTicker(a.cfg.SweepEvery)
	defer tick.Stop()
	for {
		n, err := a.sweep(ctx, time.Now())
		switch {
		case err != nil && ctx.Err() == nil:
			a.log.Warn("deleting old reports failed", "err", err)
		case n > 0:
			a.log.Info("old reports deleted", "count", n, "older_than", a.cfg.KeepFor)
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return
		}
	}
}

// staleAfter is how much longer than KeepFor an unfinished report is kept.
const staleAfter = 24 * time.Hour

// sweep deletes what is due at now and returns how many reports and files
// it deleted.
func (a *webApp) sweep(ctx context.Context, now time.Time) (int, error) {
	cutoff := now.Add(-a.cfg.KeepFor)
	root, err := os.OpenRoot(a.dir)
	if err != nil {
		return 0, err
	}
	defer root.Close()
	old, err := a.store.due(ctx, cutoff, cutoff.Add(-staleAfter))
	if err != nil {
		return 0, err
	}
	deleted := 0
	for _, r := range old {
		if r.name != "" {
			if err := root.Remove(r.name); err != nil && !errors.Is(err, fs.ErrNotExist) {
				a.log.Warn("old report file not deleted", "report_id", r.id, "err", err)
				continue // the record stays: the next sweep tries again
			}
		}
		if err := a.store.delete(ctx, r.id); err != nil {
			return deleted, err
		}
		a.hub.notify(r.id)
		deleted++
	}
	strays, err := a.sweepFiles(root, cutoff)
	return deleted + strays, err
}

// sweepFiles deletes the report files (sales_*.xlsx, as the worker names
// them) in root last modified before cutoff. Other files stay.
func (a *webApp) sweepFiles(root *os.Root, cutoff time.Time) (int, error) {
	entries, err := fs.ReadDir(root.FS(), ".")
	if err != nil {
		return 0, err
	}
	deleted := 0
	for _, e := range entries {
		name := e.Name()
		if !e.Type().IsRegular() || !strings.HasPrefix(name, "sales_") || filepath.Ext(name) != ".xlsx" {
			continue
		}
		fi, err := e.Info()
		if err != nil || !fi.ModTime().Before(cutoff) {
			continue
		}
		if err := root.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
			a.log.Warn("old report file not deleted", "name", name, "err", err)
			continue
		}
		deleted++
	}
	return deleted, nil
}

// oldReport is a report due for deletion.
type oldReport struct {
	id   string
	name string // its .xlsx in the reports folder, if any
}

// due returns the reports finished before finished and the unfinished ones
// last changed before unfinished.
func (s *statusStore) due(ctx context.Context, finished, unfinished time.Time) ([]oldReport, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, state, path, updated_at FROM reports`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []oldReport
	for rows.Next() {
		var id, state, updated string
		var path sql.NullString
		if err := rows.Scan(&id, &state, &path, &updated); err != nil {
			return nil, err
		}
		// RFC 3339 text with trimmed fractions does not sort as text:
		// compare as times.
		cutoff := unfinished
		if terminal(state) {
			cutoff = finished
		}
		t, err := time.Parse(time.RFC3339Nano, updated)
		if err != nil || !t.Before(cutoff) {
			continue
		}
		r := oldReport{id: id}
		if path.String != "" {
			r.name = filepath.Base(path.String)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// delete forgets a report and its history.
func (s *statusStore) delete(ctx context.Context, id string) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM events WHERE report_id = ?`, id); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM reports WHERE id = ?`, id)
		return err
	})
}
