package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/polis-platform/polis/storage"
	"github.com/polis-platform/polis/storage/schema"
)

// runMigrate applies the schema as `polis serve` does at start, with the
// same ClickHouse flags: on one server, or on a cluster with
// --clickhouse-cluster.
func runMigrate(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	addr, db, cluster := storage.DefaultAddr, schema.DefaultDatabase, ""
	var co storage.ConnOptions
	clickhouseFlags(fs, &addr, &co, &cluster, &db)
	if err := parse(fs, args); err != nil {
		return err
	}
	co.Addr = addr
	conn, err := storage.Open(co, nil)
	if err != nil {
		return fmt.Errorf("cannot open ClickHouse %s: %w", addr, err)
	}
	defer conn.Close()
	var applied []int
	where := addr
	if cluster != "" {
		where = "cluster " + cluster + " (through " + addr + ")"
		applied, err = schema.ApplyCluster(ctx, conn, cluster, db, schema.Options{})
	} else {
		applied, err = schema.Apply(ctx, conn, db)
	}
	if err != nil {
		return err
	}
	if len(applied) == 0 {
		fmt.Fprintf(stdout, "database %s on %s is up to date\n", db, where)
		return nil
	}
	fmt.Fprintf(stdout, "database %s on %s: applied migrations %v\n", db, where, applied)
	return nil
}
