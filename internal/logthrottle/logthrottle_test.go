package logthrottle

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestAllowAt_OncePerInterval(t *testing.T) {
	th := New(time.Second)
	now := time.Unix(0, 0)
	var got []string
	for i := range 6 {
		n, ok := th.AllowAt("k", now.Add(time.Duration(i)*400*time.Millisecond))
		got = append(got, fmt.Sprintf("%v/%d", ok, n))
	}
	// 0 ms, 400, 800 held, 1200 through with 2 held, 1600 and 2000 held.
	if want := "true/0 false/0 false/0 true/2 false/0 false/0"; strings.Join(got, " ") != want {
		t.Fatalf("unexpected throttling; got %s; want %s", strings.Join(got, " "), want)
	}
	// Exactly one interval after the last line is through again.
	if n, ok := th.AllowAt("k", now.Add(2200*time.Millisecond)); !ok || n != 2 {
		t.Fatalf("one interval later: got %v/%d; want true/2", ok, n)
	}
}

func TestAllowAt_KeysAreIndependent(t *testing.T) {
	th := New(time.Minute)
	now := time.Unix(100, 0)
	if _, ok := th.AllowAt("a", now); !ok {
		t.Fatal("first line of a held back")
	}
	if _, ok := th.AllowAt("b", now); !ok {
		t.Fatal("first line of b held back by a")
	}
	if _, ok := th.AllowAt("a", now.Add(time.Second)); ok {
		t.Fatal("second line of a within the interval let through")
	}
	if n, ok := th.AllowAt("b", now.Add(time.Minute)); !ok || n != 0 {
		t.Fatalf("b one interval later: got %v/%d; want true/0 (a's held line is not b's)", ok, n)
	}
}

// The first line of a key goes through whatever the clock says (a zero
// time, a clock before the Unix epoch).
func TestAllowAt_FirstLineAlways(t *testing.T) {
	for _, now := range []time.Time{{}, time.Unix(-1e9, 0), time.Now()} {
		if _, ok := New(time.Hour).AllowAt("k", now); !ok {
			t.Fatalf("first line at %v held back", now)
		}
	}
}

func TestAllow_Concurrent(t *testing.T) {
	th := New(time.Hour)
	var wg sync.WaitGroup
	var mu sync.Mutex
	allowed := 0
	for range 8 {
		wg.Go(func() {
			for range 100 {
				if _, ok := th.Allow("k"); ok {
					mu.Lock()
					allowed++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if allowed != 1 {
		t.Fatalf("%d lines let through within one interval; want 1", allowed)
	}
	th.keys["k"].last = time.Now().Add(-2 * time.Hour)
	if n, ok := th.Allow("k"); !ok || n != 799 {
		t.Fatalf("after the interval: got %v/%d; want true/799", ok, n)
	}
}
