package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"time"

	_ "modernc.org/sqlite" // the pure-Go SQLite driver, registered as "sqlite"
)

// The sales database is server two's own data: the "heavy queries" of the
// seed article run against it. It is an embedded SQLite file, seeded with
// deterministic demo data the first time it is opened.

// timeLayout is how sold_at is stored: fixed-width UTC text, so that string
// comparison in SQL is time comparison.
const timeLayout = "2006-01-02T15:04:05Z"

// Seed sizes: a few thousand sales over the last six months.
const (
	seedSales = 4000
	seedDays  = 180
)

// openSQLite opens (creating if needed) the SQLite file at path with the
// settings both databases of this example use: WAL, a busy timeout, and write
// transactions that take the write lock when they begin (so two writers queue
// instead of failing on a lock upgrade).
func openSQLite(path string) (*sql.DB, error) {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(5000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return db, nil
}

// salesDB is the worker's database. It is safe for concurrent use.
type salesDB struct {
	db *sql.DB
}

// openSalesDB opens the sales database at path, creating and seeding it on
// first use. now anchors the seed: sales are spread over the seedDays days
// before the start of now's UTC day, so the same day always gives the same
// data.
func openSalesDB(ctx context.Context, path string, now time.Time) (*salesDB, error) {
	db, err := openSQLite(path)
	if err != nil {
		return nil, err
	}
	s := &salesDB{db: db}
	if err := s.seed(ctx, now); err != nil {
		db.Close()
		return nil, fmt.Errorf("seed %s: %w", path, err)
	}
	return s, nil
}

// Close closes the database.
func (s *salesDB) Close() error { return s.db.Close() }

const salesSchema = `
CREATE TABLE IF NOT EXISTS meta (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS customers (
	id     INTEGER PRIMARY KEY,
	name   TEXT NOT NULL,
	region TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS products (
	id          INTEGER PRIMARY KEY,
	sku         TEXT NOT NULL UNIQUE,
	name        TEXT NOT NULL,
	price_cents INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS sales (
	id               INTEGER PRIMARY KEY,
	sold_at          TEXT NOT NULL,
	customer_id      INTEGER NOT NULL REFERENCES customers(id),
	product_id       INTEGER NOT NULL REFERENCES products(id),
	quantity         INTEGER NOT NULL CHECK (quantity > 0),
	unit_price_cents INTEGER NOT NULL CHECK (unit_price_cents >= 0)
);
CREATE INDEX IF NOT EXISTS sales_sold_at ON sales(sold_at);
`

var (
	seedRegions  = []string{"North", "South", "East", "West", "Central"}
	seedFirst    = []string{"Acme", "Globex", "Initech", "Umbrella", "Stark", "Wayne", "Hooli", "Vandelay", "Soylent", "Tyrell", "Cyberdyne", "Wonka"}
	seedSecond   = []string{"Trading", "Foods", "Systems", "Retail", "Logistics"}
	seedProducts = []struct {
		sku, name string
		cents     int64
	}{
		{"KB-100", "Keyboard", 4990}, {"MS-200", "Mouse", 1990}, {"MN-270", "Monitor 27\"", 21900},
		{"LP-140", "Laptop 14\"", 89900}, {"HD-010", "Headset", 5990}, {"WC-720", "Webcam", 3990},
		{"DK-300", "Docking station", 12900}, {"CB-USB", "USB-C cable", 990}, {"SSD-1T", "SSD 1 TB", 7990},
		{"CH-ERG", "Office chair", 24900}, {"DS-STD", "Standing desk", 39900}, {"LT-LED", "Desk lamp", 2490},
	}
)

// seed creates the schema and, unless the database was seeded before, fills
// it in one transaction with data drawn from a fixed random seed.
func (s *salesDB) seed(ctx context.Context, now time.Time) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	if _, err := tx.ExecContext(ctx, salesSchema); err != nil {
		return err
	}
	var seededAt string
	err = tx.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'seeded_at'`).Scan(&seededAt)
	if err == nil {
		return nil // seeded on an earlier start
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return err
	}

	rng := rand.New(rand.NewPCG(20240311, 42))
	anchor := now.UTC().Truncate(24 * time.Hour)
	customers := 0
	for _, a := range seedFirst {
		for _, b := range seedSecond {
			customers++
			region := seedRegions[rng.IntN(len(seedRegions))]
			if _, err := tx.ExecContext(ctx, `INSERT INTO customers (id, name, region) VALUES (?, ?, ?)`,
				customers, a+" "+b, region); err != nil {
				return err
			}
		}
	}
	for i, p := range seedProducts {
		if _, err := tx.ExecContext(ctx, `INSERT INTO products (id, sku, name, price_cents) VALUES (?, ?, ?, ?)`,
			i+1, p.sku, p.name, p.cents); err != nil {
			return err
		}
	}
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO sales (sold_at, customer_id, product_id, quantity, unit_price_cents) VALUES (?, ?, ?, ?, ?)`)
	if err != nil {
		return err
	}
	defer stmt.Close()
	span := int64(seedDays * 24 * time.Hour / time.Second)
	for range seedSales {
		at := anchor.Add(-time.Duration(1+rng.Int64N(span)) * time.Second)
		product := rng.IntN(len(seedProducts))
		price := seedProducts[product].cents
		if rng.IntN(4) == 0 { // a quarter of the sales got 5–20 % off
			price = price * int64(80+rng.IntN(16)) / 100
		}
		if _, err := stmt.ExecContext(ctx, at.Format(timeLayout), 1+rng.IntN(customers), product+1, 1+rng.IntN(12), price); err != nil {
			return err
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES ('seeded_at', ?)`, now.UTC().Format(time.RFC3339)); err != nil {
		return err
	}
	return tx.Commit()
}

// saleRow is one line of the report.
type saleRow struct {
	ID         int64
	SoldAt     time.Time
	Customer   string
	Region     string
	SKU        string
	Product    string
	Quantity   int64
	UnitCents  int64
	AmountCent int64
}

// regionRow is one line of the report's summary: the sales of one region.
type regionRow struct {
	Region      string
	Orders      int64
	Quantity    int64
	AmountCents int64
}

// salesData is everything a report shows, read in one transaction so the
// detail rows, the summary and the totals describe the same snapshot.
type salesData struct {
	Rows          []saleRow
	Regions       []regionRow
	TotalQuantity int64
	TotalCents    int64
}

// query reads the sales in [from, to] (both inclusive, UTC) in one read-only
// transaction: the detail rows, the totals per region and the grand totals
// computed by SQL. It checks that the rows add up to SQL's totals.
func (s *salesDB) query(ctx context.Context, from, to time.Time) (*salesData, error) {
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, err
	}
	defer tx.Rollback() //nolint:errcheck // read-only: nothing to keep
	lo, hi := from.UTC().Format(timeLayout), to.UTC().Format(timeLayout)

	var d salesData
	rows, err := tx.QueryContext(ctx, `
		SELECT s.id, s.sold_at, c.name, c.region, p.sku, p.name, s.quantity, s.unit_price_cents
		FROM sales s
		JOIN customers c ON c.id = s.customer_id
		JOIN products p ON p.id = s.product_id
		WHERE s.sold_at BETWEEN ? AND ?
		ORDER BY s.sold_at, s.id`, lo, hi)
	if err != nil {
		return nil, fmt.Errorf("query sales: %w", err)
	}
	defer rows.Close()
	var sumQty, sumCents int64
	for rows.Next() {
		var r saleRow
		var at string
		if err := rows.Scan(&r.ID, &at, &r.Customer, &r.Region, &r.SKU, &r.Product, &r.Quantity, &r.UnitCents); err != nil {
			return nil, fmt.Errorf("scan sale: %w", err)
		}
		if r.SoldAt, err = time.Parse(timeLayout, at); err != nil {
			return nil, fmt.Errorf("sale %d: sold_at %q: %w", r.ID, at, err)
		}
		r.AmountCent = r.Quantity * r.UnitCents
		sumQty += r.Quantity
		sumCents += r.AmountCent
		d.Rows = append(d.Rows, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("query sales: %w", err)
	}

	regions, err := tx.QueryContext(ctx, `
		SELECT c.region, COUNT(*), SUM(s.quantity), SUM(s.quantity * s.unit_price_cents)
		FROM sales s JOIN customers c ON c.id = s.customer_id
		WHERE s.sold_at BETWEEN ? AND ?
		GROUP BY c.region ORDER BY c.region`, lo, hi)
	if err != nil {
		return nil, fmt.Errorf("query regions: %w", err)
	}
	defer regions.Close()
	for regions.Next() {
		var r regionRow
		if err := regions.Scan(&r.Region, &r.Orders, &r.Quantity, &r.AmountCents); err != nil {
			return nil, fmt.Errorf("scan region: %w", err)
		}
		d.Regions = append(d.Regions, r)
	}
	if err := regions.Err(); err != nil {
		return nil, fmt.Errorf("query regions: %w", err)
	}

	if err := tx.QueryRowContext(ctx, `
		SELECT COALESCE(SUM(quantity), 0), COALESCE(SUM(quantity * unit_price_cents), 0)
		FROM sales WHERE sold_at BETWEEN ? AND ?`, lo, hi).Scan(&d.TotalQuantity, &d.TotalCents); err != nil {
		return nil, fmt.Errorf("query totals: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	if sumQty != d.TotalQuantity || sumCents != d.TotalCents {
		return nil, fmt.Errorf("rows add up to %d items / %d cents but SQL totals are %d / %d", sumQty, sumCents, d.TotalQuantity, d.TotalCents)
	}
	return &d, nil
}
