package health

import (
	"fmt"
	"strings"
	"testing"

	"yakimg/yakiros/config"
)

// TestCounter runs result sequences through Counter and checks the change
// each result makes, the consecutive failures after it, and the degraded
// flag. "+" is a pass, "-" a failure.
func TestCounter(t *testing.T) {
	for _, tc := range []struct {
		name             string
		fail, restart    int
		results          string
		changes          []Change
		failures         []int
		degradedAtTheEnd bool
	}{
		{"defaults: degrade at 3, restart at 5", 3, 5, "-----",
			[]Change{Steady, Steady, Degrade, Steady, Restart}, []int{1, 2, 3, 4, 5}, true},
		{"passes never change anything", 3, 5, "+++",
			[]Change{Steady, Steady, Steady}, []int{0, 0, 0}, false},
		{"a pass before the threshold resets the count", 3, 5, "--+--+",
			[]Change{Steady, Steady, Steady, Steady, Steady, Steady}, []int{1, 2, 0, 1, 2, 0}, false},
		{"one pass recovers", 3, 5, "---+",
			[]Change{Steady, Steady, Degrade, Recover}, []int{1, 2, 3, 0}, false},
		{"degraded again after recovering", 2, 9, "--+--",
			[]Change{Steady, Degrade, Recover, Steady, Degrade}, []int{1, 2, 0, 1, 2}, true},
		{"recovering resets the count towards restart", 2, 4, "---+---",
			[]Change{Steady, Degrade, Steady, Recover, Steady, Degrade, Steady}, []int{1, 2, 3, 0, 1, 2, 3}, true},
		{"restart is reported once", 1, 2, "----",
			[]Change{Degrade, Restart, Steady, Steady}, []int{1, 2, 3, 4}, true},
		{"thresholds of 1", 1, 1, "-",
			[]Change{Restart}, []int{1}, false},
		{"restart threshold below the fail threshold: never degraded", 3, 2, "---",
			[]Change{Steady, Restart, Steady}, []int{1, 2, 3}, false},
		{"equal thresholds: restart, not degrade", 3, 3, "---",
			[]Change{Steady, Steady, Restart}, []int{1, 2, 3}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := NewCounter(config.Health{FailThreshold: tc.fail, RestartThreshold: tc.restart})
			for i, r := range tc.results {
				got := c.Record(r == '+')
				if got != tc.changes[i] || c.Failures() != tc.failures[i] || c.Checks() != i+1 {
					t.Fatalf("result %d (%c) of %q: Record = %v, Failures = %d, Checks = %d; want %v, %d, %d",
						i+1, r, tc.results, got, c.Failures(), c.Checks(), tc.changes[i], tc.failures[i], i+1)
				}
			}
			if c.Degraded() != tc.degradedAtTheEnd {
				t.Errorf("Degraded() = %v after %q; want %v", c.Degraded(), tc.results, tc.degradedAtTheEnd)
			}
		})
	}
}

// For every pair of thresholds up to 6, over runs of 0 to 8 consecutive
// failures each ended by a pass, the thresholds act exactly when the count
// of consecutive failures reaches them, and at no other time.
func TestCounterActsExactlyAtThresholds(t *testing.T) {
	var results []bool
	for _, n := range []int{0, 3, 8, 1, 5, 2, 7, 0, 4, 6, 1} {
		for range n {
			results = append(results, false)
		}
		results = append(results, true)
	}
	for fail := 1; fail <= 6; fail++ {
		for restart := 1; restart <= 6; restart++ {
			c := NewCounter(config.Health{FailThreshold: fail, RestartThreshold: restart})
			run, degraded := 0, false
			var trace strings.Builder
			for i, ok := range results {
				got := c.Record(ok)
				want := Steady
				if ok {
					run = 0
					if degraded {
						want, degraded = Recover, false
					}
				} else {
					run++
					switch {
					case run == restart:
						want = Restart
					case run == fail && run < restart:
						want, degraded = Degrade, true
					}
				}
				fmt.Fprintf(&trace, "%v ", ok)
				if got != want || c.Failures() != run || c.Degraded() != degraded {
					t.Fatalf("fail %d, restart %d, result %d after %s: Record = %v, Failures %d, Degraded %v; want %v, %d, %v",
						fail, restart, i+1, trace.String(), got, c.Failures(), c.Degraded(), want, run, degraded)
				}
			}
		}
	}
}
