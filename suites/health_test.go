package suites

import (
	"strings"
	"testing"
	"time"

	"yakimg/yakiros/config"
)

// failing builds the samples of a process whose checks fail from the
// second check on, one sample per check taken 100 ms after it ended,
// checks one interval apart; state gives the state shown at n failures.
func failing(pid, upTo int, interval time.Duration, state func(n int) string) []sample {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var out []sample
	for n := 0; n <= upTo; n++ {
		c := component{Name: "svc", PID: pid, State: state(n), Health: "failing", HealthChecks: n + 1, HealthFailures: n, LastCheckMSAgo: 100}
		if n == 0 {
			c.Health = "ok"
		}
		out = append(out, sample{at: t0.Add(time.Duration(n)*interval + 100*time.Millisecond), c: c})
	}
	return out
}

func TestCountTransitions(t *testing.T) {
	h := config.Health{Interval: time.Second, FailThreshold: 3, RestartThreshold: 5}
	right := func(n int) string {
		switch {
		case n >= 5:
			return "STOPPING"
		case n >= 3:
			return "DEGRADED"
		}
		return "ACTIVE"
	}
	line, err := countTransitions(failing(7, 5, time.Second, right), 7, h)
	if err != nil || line != "failures counted [1 2 3 4 5]; DEGRADED at the failure 3, 2s after the first" {
		t.Errorf("countTransitions(right) = %q, %v", line, err)
	}
	// Samples of the next process are not this one's.
	restarted := append(failing(7, 5, time.Second, right), sample{c: component{PID: 8, State: "ACTIVE", HealthFailures: 1, HealthChecks: 1}})
	if _, err := countTransitions(restarted, 7, h); err != nil {
		t.Errorf("countTransitions with a restarted process = %v", err)
	}

	for _, tc := range []struct {
		name    string
		samples []sample
		want    string
	}{
		{"degraded one late", failing(7, 4, time.Second, func(n int) string {
			if n >= 4 {
				return "DEGRADED"
			}
			return "ACTIVE"
		}), "ACTIVE with 3 consecutive failures; want DEGRADED"},
		{"degraded one early", failing(7, 4, time.Second, func(n int) string {
			if n >= 2 {
				return "DEGRADED"
			}
			return "ACTIVE"
		}), "DEGRADED with 2 consecutive failures; want ACTIVE"},
		{"not stopped at restart", failing(7, 5, time.Second, func(n int) string {
			if n >= 3 {
				return "DEGRADED"
			}
			return "ACTIVE"
		}), "DEGRADED with 5 consecutive failures; want STOPPING or FAILED or INACTIVE"},
		{"threshold not seen", func() []sample {
			s := failing(7, 4, time.Second, right)
			return append(s[:3], s[4:]...) // no sample with 3 failures
		}(), "no sample with 3 consecutive failures"},
		{"too fast", failing(7, 4, 100*time.Millisecond, right), "failed checks 1 and 2 ended 100ms apart"},
		{"double count", func() []sample {
			s := failing(7, 4, time.Second, right)
			s[3].c.HealthChecks++ // a check counted twice or skipped
			return s
		}(), "a check was skipped or counted twice"},
	} {
		if _, err := countTransitions(tc.samples, 7, h); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: countTransitions = %v; want %q", tc.name, err, tc.want)
		}
	}
}

func TestCPUTicks(t *testing.T) {
	// A real /proc/1/stat line, with a space and a parenthesis in the name.
	stat := "1 (graph (res) x) S 0 1 1 0 -1 4194560 1370 0 0 0 17 42 5 3 20 0 7 0 10 1263693824 2417 18446744073709551615"
	if own, children, err := cpuTicks(stat); err != nil || own != 59 || children != 8 {
		t.Errorf("cpuTicks = %d, %d, %v; want 17 + 42 and 5 + 3", own, children, err)
	}
	for _, bad := range []string{"", "1 graph S 0", "1 (x) S 0 1 1 0 -1 4194560 1370 0 0 0 a 42 0 0", "1 (x) S 0 1 1 0 -1 4194560 1370 0 0 0 1 42 0 x", "1 (x) S 0 1"} {
		if _, _, err := cpuTicks(bad); err == nil {
			t.Errorf("cpuTicks(%q) = nil error", bad)
		}
	}
}

// The load declarations are valid and checked every second by the test
// script, each in a directory of its own.
func TestLoadDecl(t *testing.T) {
	seen := map[string]bool{}
	for i := 1; i <= loadServices; i++ {
		c, err := config.Parse("load.toml", []byte(loadDecl(i)))
		if err != nil {
			t.Fatalf("loadDecl(%d): %v", i, err)
		}
		if c.Name != loadName(i) || c.Health.Method != config.HealthCommand || c.Health.Interval != time.Second ||
			!strings.HasPrefix(c.Health.Command, "/usr/libexec/graph/health-check-test.sh "+loadDir+"/") || seen[c.Health.Command] {
			t.Errorf("loadDecl(%d) = %+v", i, c)
		}
		seen[c.Health.Command] = true
	}
}

func TestHealthColumn(t *testing.T) {
	for _, tc := range []struct {
		c    component
		want string
	}{
		{component{}, "-"},
		{component{Health: "unknown"}, "UNKNOWN"},
		{component{Health: "ok"}, "OK"},
		{component{Health: "failing", HealthFailures: 4}, "FAIL(4)"},
	} {
		if got := healthColumn(tc.c); got != tc.want {
			t.Errorf("healthColumn(%+v) = %q; want %q", tc.c, got, tc.want)
		}
	}
}
