package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"time"
)

// The web app's status store: a small SQLite file that remembers every report
// the app started and every notice it received, so a restarted web app still
// knows finished reports, and a live stream can replay what it missed.

// Report states, as shown in the status JSON.
const (
	statePending  = "pending"
	stateProgress = "progress"
	stateDone     = "done"
	stateFailed   = "failed"
)

func terminal(state string) bool { return state == stateDone || state == stateFailed }

// Status is a report's status as the web app shows it.
type Status struct {
	ID    string `json:"id"`
	From  string `json:"from"`
	To    string `json:"to"`
	State string `json:"state"`
	// Notice is the last notice received: a ReportProgress while in
	// progress, the ReportReady completion notice when done.
	Notice json.RawMessage `json:"notice,omitempty"`
	// Error is set when the report failed.
	Error *StatusError `json:"error,omitempty"`
	// Download is the link to the .xlsx when done.
	Download  string    `json:"download,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`

	path string // the .xlsx's name in the reports folder, when done
}

// StatusError is why a report failed: the rpc error code and message.
type StatusError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// storedEvent is one entry of a report's history: the status right after a
// change.
type storedEvent struct {
	Seq   int64
	State string
	Data  json.RawMessage // a Status
}

var errNotFound = errors.New("report not found")

// The status store's connection pool.
const (
	storeMaxConns     = 8
	storeMaxIdleConns = 2
)

// statusStore is safe for concurrent use.
type statusStore struct {
	db  *sql.DB
	now func() time.Time
}

const storeSchema = `
CREATE TABLE IF NOT EXISTS reports (
	id            TEXT PRIMARY KEY,
	range_from    TEXT NOT NULL DEFAULT '',
	range_to      TEXT NOT NULL DEFAULT '',
	state         TEXT NOT NULL,
	notice        TEXT,
	error_code    TEXT,
	error_message TEXT,
	path          TEXT,
	created_at    TEXT NOT NULL,
	updated_at    TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
	seq       INTEGER PRIMARY KEY AUTOINCREMENT,
	report_id TEXT NOT NULL REFERENCES reports(id),
	notice_id TEXT UNIQUE,
	state     TEXT NOT NULL,
	data      TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_report ON events(report_id, seq);
`

func openStatusStore(ctx context.Context, path string) (*statusStore, error) {
	db, err := openSQLite(path)
	if err != nil {
		return nil, err
	}
	if _, err := db.ExecContext(ctx, storeSchema); err != nil {
		db.Close()
		return nil, fmt.Errorf("status store %s: %w", path, err)
	}
	// A bounded pool: however many live streams read the store at once,
	// it holds at most storeMaxConns SQLite handles, and idle ones close.
	db.SetMaxOpenConns(storeMaxConns)
	db.SetMaxIdleConns(storeMaxIdleConns)
	db.SetConnMaxIdleTime(time.Minute)
	return &statusStore{db: db, now: time.Now}, nil
}

func (s *statusStore) Close() error { return s.db.Close() }

// create records a report just sent. The web app records a report before
// it handles any notice for it (see webApp.start), so notices for ids it
// never recorded can be told apart and ignored.
func (s *statusStore) create(ctx context.Context, id, from, to string) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		now := s.now().UTC().Format(time.RFC3339Nano)
		if _, err := tx.ExecContext(ctx, `INSERT INTO reports (id, range_from, range_to, state, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)`,
			id, from, to, statePending, now, now); err != nil {
			return err
		}
		return addEvent(ctx, tx, id, "")
	})
}

// notice is a change of a report's status brought by a notice.
type notice struct {
	ReportID string // the request id the notice answers
	NoticeID string // the notice's own id: a redelivered notice is ignored
	State    string // stateProgress, stateDone or stateFailed
	Payload  json.RawMessage
	Err      *StatusError
	Path     string // the .xlsx's name in the reports folder, when done
}

// apply stores n and reports whether it changed anything: a notice seen
// before, or one for a report that already finished, changes nothing. A
// notice for a report that create never recorded gets errNotFound.
func (s *statusStore) apply(ctx context.Context, n notice) (changed bool, err error) {
	err = s.tx(ctx, func(tx *sql.Tx) error {
		var dup int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM events WHERE notice_id = ?`, n.NoticeID).Scan(&dup); err != nil {
			return err
		}
		if dup > 0 {
			return nil
		}
		st, err := getStatus(ctx, tx, n.ReportID)
		switch {
		case err != nil:
			return err // errNotFound: a report this app never issued
		case terminal(st.State):
			return nil
		}
		now := s.now().UTC().Format(time.RFC3339Nano)
		var code, msg sql.NullString
		if n.Err != nil {
			code = sql.NullString{String: n.Err.Code, Valid: true}
			msg = sql.NullString{String: n.Err.Message, Valid: true}
		}
		var payload sql.NullString
		if len(n.Payload) > 0 {
			payload = sql.NullString{String: string(n.Payload), Valid: true}
		}
		if _, err := tx.ExecContext(ctx, `
			UPDATE reports SET state = ?, notice = ?, error_code = ?, error_message = ?, path = ?, updated_at = ?
			WHERE id = ?`,
			n.State, payload, code, msg, n.Path, now, n.ReportID); err != nil {
			return err
		}
		changed = true
		return addEvent(ctx, tx, n.ReportID, n.NoticeID)
	})
	return changed, err
}

// get returns a report's status, or errNotFound.
func (s *statusStore) get(ctx context.Context, id string) (*Status, error) {
	return getStatus(ctx, s.db, id)
}

// eventsSince returns the report's history after seq, oldest first.
func (s *statusStore) eventsSince(ctx context.Context, id string, seq int64) ([]storedEvent, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT seq, state, data FROM events WHERE report_id = ? AND seq > ? ORDER BY seq`, id, seq)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []storedEvent
	for rows.Next() {
		var e storedEvent
		var data string
		if err := rows.Scan(&e.Seq, &e.State, &data); err != nil {
			return nil, err
		}
		e.Data = json.RawMessage(data)
		out = append(out, e)
	}
	return out, rows.Err()
}

func (s *statusStore) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback() //nolint:errcheck // the error that matters is fn's
		return err
	}
	return tx.Commit()
}

type queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func getStatus(ctx context.Context, q queryer, id string) (*Status, error) {
	var st Status
	var notice, code, msg, path sql.NullString
	var created, updated string
	err := q.QueryRowContext(ctx, `
		SELECT id, range_from, range_to, state, notice, error_code, error_message, path, created_at, updated_at
		FROM reports WHERE id = ?`, id).Scan(&st.ID, &st.From, &st.To, &st.State, &notice, &code, &msg, &path, &created, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errNotFound
	}
	if err != nil {
		return nil, err
	}
	if notice.Valid {
		st.Notice = json.RawMessage(notice.String)
	}
	if code.Valid {
		st.Error = &StatusError{Code: code.String, Message: msg.String}
	}
	st.path = path.String
	if st.State == stateDone {
		st.Download = "/reports/" + url.PathEscape(st.ID) + "/download"
	}
	st.CreatedAt, _ = time.Parse(time.RFC3339Nano, created)
	st.UpdatedAt, _ = time.Parse(time.RFC3339Nano, updated)
	return &st, nil
}

// addEvent appends the report's current status to its history.
func addEvent(ctx context.Context, tx *sql.Tx, id, noticeID string) error {
	st, err := getStatus(ctx, tx, id)
	if err != nil {
		return err
	}
	data, err := json.Marshal(st)
	if err != nil {
		return err
	}
	var nid sql.NullString
	if noticeID != "" {
		nid = sql.NullString{String: noticeID, Valid: true}
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO events (report_id, notice_id, state, data) VALUES (?, ?, ?, ?)`, id, nid, st.State, string(data))
	return err
}
