package ruletest

import (
	"fmt"
	"github.com/polis-platform/polis/rules/dsl"
	"strings"
)

// Error is one problem in a fixture file.
type Error struct {
	File      string
	Line, Col int // 1-based
	Msg       string
}

func (e *Error) Error() string { return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Col, e.Msg) }

// ErrorList is every problem found in a fixture, in file order.
type ErrorList []*Error

func (l ErrorList) Error() string {
	s := make([]string, len(l))
	for i, e := range l {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

// maxErrors bounds the list so that a broken fixture does not flood the author.
const maxErrors = 20

// suggest is the did-you-mean of rule files.
func suggest(s string, candidates []string) string { return dsl.Suggest(s, candidates) }

// didYouMean is " (did you mean "x"?)" or "".
func didYouMean(s string, candidates []string) string {
	if c := suggest(s, candidates); c != "" {
		return fmt.Sprintf(" (did you mean %q?)", c)
	}
	return ""
}
