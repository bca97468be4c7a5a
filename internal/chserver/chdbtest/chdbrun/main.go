// Command chdbrun runs SQL on chDB, the ClickHouse engine as a library
// (libchdb.so, driven by github.com/chdb-io/chdb-go), for package chdbtest.
//
//	CHDB_LIB_PATH=/path/to/libchdb.so chdbrun DIR
//
// opens a session whose data lives in DIR, then reads requests from stdin,
// one JSON object a line ({"query": "...", "format": "JSONEachRow"}), and
// answers each with one line, {"out": "..."} or {"error": "..."}. It stops
// at the end of stdin.
//
// It is a process of its own because chdb-go loads the library in an init
// function and panics when it is missing, so no test binary could say what
// to do instead; and the engine's threads and signal handlers stay out of
// the test binaries (which may run with the race detector).
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"

	"github.com/chdb-io/chdb-go/chdb"
)

type request struct {
	Query  string `json:"query"`
	Format string `json:"format"`
}

type response struct {
	Out   string `json:"out,omitempty"`
	Error string `json:"error,omitempty"`
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: chdbrun DIR")
		os.Exit(2)
	}
	s, err := chdb.NewSession(os.Args[1])
	if err != nil {
		fmt.Fprintf(os.Stderr, "chdbrun: cannot open a chDB session in %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
	// Close, not Cleanup: the directory belongs to the caller.
	defer s.Close()
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 256<<20)
	out := json.NewEncoder(os.Stdout)
	for in.Scan() {
		var req request
		var resp response
		if err := json.Unmarshal(in.Bytes(), &req); err != nil {
			resp.Error = "chdbrun: bad request: " + err.Error()
		} else if r, err := s.Query(req.Query, req.Format); err != nil {
			resp.Error = err.Error()
		} else if r != nil {
			resp.Out = r.String()
			r.Free()
		}
		if err := out.Encode(resp); err != nil {
			fmt.Fprintf(os.Stderr, "chdbrun: %v\n", err)
			os.Exit(1)
		}
	}
	if err := in.Err(); err != nil {
		fmt.Fprintf(os.Stderr, "chdbrun: %v\n", err)
		os.Exit(1)
	}
}
