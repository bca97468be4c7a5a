package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/polis-platform/polis/storage"
	"github.com/polis-platform/polis/storage/schema"
)

func runMigrate(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	addr := fs.String("clickhouse", storage.DefaultAddr, "ClickHouse native protocol address")
	db := fs.String("database", schema.DefaultDatabase, "database to migrate")
	if err := parse(fs, args); err != nil {
		return err
	}
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{*addr}, DialTimeout: 5 * time.Second})
	if err != nil {
		return fmt.Errorf("cannot open ClickHouse %s: %w", *addr, err)
	}
	defer conn.Close()
	applied, err := schema.Apply(ctx, conn, *db)
	if err != nil {
		return err
	}
	if len(applied) == 0 {
		fmt.Fprintf(stdout, "database %s on %s is up to date\n", *db, *addr)
		return nil
	}
	fmt.Fprintf(stdout, "database %s on %s: applied migrations %v\n", *db, *addr, applied)
	return nil
}
