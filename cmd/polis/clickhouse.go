package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/polis-platform/polis/internal/chserver"
)

// runClickHouse runs Debian's clickhouse-server with a config and data
// directory of the project's, in the foreground, until interrupted.
func runClickHouse(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("clickhouse", flag.ContinueOnError)
	dir := fs.String("dir", "var/clickhouse", "config, data and logs directory")
	tcp := fs.Int("tcp-port", chserver.DefaultTCPPort, "native protocol port (127.0.0.1)")
	http := fs.Int("http-port", chserver.DefaultHTTPPort, "HTTP port (127.0.0.1)")
	if err := parse(fs, args); err != nil {
		return err
	}
	log, _ := newLogger(os.Stderr, "info")
	s, err := chserver.Start(ctx, chserver.Options{Dir: *dir, TCPPort: *tcp, HTTPPort: *http, Logger: log})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "ClickHouse native %s, HTTP http://%s, data in %s (Ctrl-C stops it)\n", s.NativeAddr(), s.HTTPAddr(), *dir)
	<-ctx.Done()
	return s.Stop()
}
