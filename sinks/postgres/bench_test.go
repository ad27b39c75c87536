package postgres_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/internal/testservers"
	"github.com/sluice-dev/sluice/sinks/postgres"
)

const benchRows = 50_000

// benchRecords are the rows both benchmarks load: the fields of the
// records a sink receives, and the same values as pgx takes them.
func benchRecords() ([]engine.Record, [][]any) {
	recs := make([]engine.Record, benchRows)
	rows := make([][]any, benchRows)
	for i := range recs {
		id, route, lat, ts := int64(i), fmt.Sprintf("/api/items/%d", i%97), float64(i%1000)/4, time.Unix(1_700_000_000+int64(i), 0).UTC()
		recs[i] = engine.Record{Fields: map[string]any{"id": id, "route": route, "latency_ms": lat, "ts": ts}}
		rows[i] = []any{id, route, lat, ts}
	}
	return recs, rows
}

func benchTable(b *testing.B) (*testservers.PG, *pgx.Conn) {
	db := testservers.Postgres(b)
	conn := db.Connect(b)
	if _, err := conn.Exec(context.Background(), `CREATE TABLE events (id bigint, route text, latency_ms double precision, ts timestamptz)`); err != nil {
		b.Fatal(err)
	}
	return db, conn
}

func truncate(b *testing.B, conn *pgx.Conn) {
	b.StopTimer()
	if _, err := conn.Exec(context.Background(), `TRUNCATE events`); err != nil {
		b.Fatal(err)
	}
	b.StartTimer()
}

// BenchmarkSink loads batches of 50,000 rows through the sink: staging
// them as JSON lines, sealing, and loading in a transaction with the
// tracking row. Compare rows/s with BenchmarkCopyFrom, the limit.
func BenchmarkSink(b *testing.B) {
	db, conn := benchTable(b)
	recs, _ := benchRecords()
	ctx := context.Background()
	sink, err := postgres.New(postgres.Config{Pipeline: "bench", Name: "rows", DSN: db.DSN, Table: "events", Dir: filepath.Join(b.TempDir(), "out"), BufferRecords: benchRows + 1})
	if err != nil {
		b.Fatal(err)
	}
	defer sink.Close()
	if err := sink.Recover(ctx, nil); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		truncate(b, conn)
		batch := &engine.Batch{Records: recs}
		if err := sink.Write(ctx, batch); err != nil {
			b.Fatal(err)
		}
		if _, err := sink.Flush(ctx, time.Now(), true); err != nil {
			b.Fatal(err)
		}
		st, err := sink.Prepare(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if err := sink.Commit(ctx, st); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*benchRows)/b.Elapsed().Seconds(), "rows/s")
	if loaded, _, _ := sink.Loads(); loaded != int64(b.N) {
		b.Fatalf("loaded %d batches, want %d", loaded, b.N)
	}
}

// BenchmarkCopyFrom loads the same rows with pgx's CopyFrom alone, in a
// transaction: what the sink's load cannot beat.
func BenchmarkCopyFrom(b *testing.B) {
	_, conn := benchTable(b)
	_, rows := benchRecords()
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		truncate(b, conn)
		tx, err := conn.Begin(ctx)
		if err != nil {
			b.Fatal(err)
		}
		n, err := tx.CopyFrom(ctx, pgx.Identifier{"events"}, []string{"id", "route", "latency_ms", "ts"}, pgx.CopyFromRows(rows))
		if err != nil || n != benchRows {
			b.Fatalf("copied %d rows: %v", n, err)
		}
		if err := tx.Commit(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*benchRows)/b.Elapsed().Seconds(), "rows/s")
}
