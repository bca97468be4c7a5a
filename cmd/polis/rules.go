package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/polis-platform/polis/rules/dsl"
)

// runRules is `polis rules check FILE...`: compile and type-check rule
// files, printing every error with file:line:col.
func runRules(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) < 2 || args[0] != "check" {
		return errors.New("usage: polis rules check FILE...")
	}
	failed := 0
	for _, path := range args[1:] {
		src, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("cannot read %s: %w", path, err)
		}
		f, err := dsl.Load(path, src, dsl.Options{})
		if err != nil {
			failed++
			fmt.Fprintln(stdout, err)
			continue
		}
		fmt.Fprintf(stdout, "%s: %d rules OK\n", path, len(f.Rules()))
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d rule files refused", failed, len(args)-1)
	}
	return nil
}
