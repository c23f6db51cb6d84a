package suites

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"yakimg/suites/report"
)

// T is a running case's handle: its deadline and its outcome.
type T struct {
	ctx context.Context
	env env

	mu     sync.Mutex
	sealed bool // the runner has taken the outcome; later writes are dropped
	status string
	msg    string
	logs   []string
}

// env is what a case may use to reach the system under test.
type env struct {
	graphctl string   // path of the graphctl binary
	metrics  *metrics // where cases put performance metrics; nil drops them
	// kexec saves the run's progress and asks for a kexec (T.Kexec);
	// cancel removes the saved progress of one that did not happen. nil
	// where the run cannot resume.
	kexec  func(t *T, state any, args []string) error
	cancel func() error
}

// metrics collects the performance metrics cases measure, for the report.
type metrics struct {
	mu     sync.Mutex
	values map[string]float64
}

func (m *metrics) set(name string, v float64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.values == nil {
		m.values = map[string]float64{}
	}
	m.values[name] = v
}

// snapshot copies the metrics so far.
func (m *metrics) snapshot() map[string]float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]float64, len(m.values))
	for k, v := range m.values {
		out[k] = v
	}
	return out
}

// Metric records a performance metric of the run (the report's
// performance_metrics): a figure the case measured, never a fixed one.
func (t *T) Metric(name string, value float64) {
	if t.env.metrics != nil {
		t.env.metrics.set(name, value)
	}
}

// Context carries the case's deadline; everything a case waits on must
// honour it.
func (t *T) Context() context.Context { return t.ctx }

// Logf adds a line to the case's message, whatever its outcome.
func (t *T) Logf(format string, args ...any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.sealed {
		t.logs = append(t.logs, fmt.Sprintf(format, args...))
	}
}

// Fatalf fails the case and stops it. Like testing.T, it must be called
// from the case's own goroutine.
func (t *T) Fatalf(format string, args ...any) {
	t.end(report.Fail, fmt.Sprintf(format, args...))
	runtime.Goexit()
}

// Skipf skips the case, saying why, and stops it.
func (t *T) Skipf(format string, args ...any) {
	t.end(report.Skip, fmt.Sprintf(format, args...))
	runtime.Goexit()
}

// end records the first outcome; later ones cannot overwrite it.
func (t *T) end(status, msg string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.sealed || t.status != "" {
		return
	}
	if status == report.Skip && strings.TrimSpace(msg) == "" {
		// DESIGN §6: a skipped case always says why.
		status, msg = report.Fail, "skipped without saying why"
	}
	t.status, t.msg = status, msg
}

// outcome seals the case and returns its status and message.
func (t *T) outcome() (status, msg string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sealed = true
	status = t.status
	if status == "" {
		status = report.Pass
	}
	parts := t.logs
	if t.msg != "" {
		parts = append(parts, t.msg)
	}
	return status, strings.Join(parts, "; ")
}

// grace is how long a case whose deadline passed may take to notice and
// report what it was doing before the runner gives up on it.
const grace = 2 * time.Second

// runCase runs c under its deadline. A panic fails the case with the panic's
// message; a case that does not return is abandoned after its deadline.
func runCase(ctx context.Context, e env, c Case) report.Case {
	timeout := c.Timeout
	if timeout == 0 {
		timeout = defaultTimeout
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := &T{ctx: cctx, env: e}
	done := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(done)
		defer func() {
			if r := recover(); r != nil {
				t.end(report.Fail, fmt.Sprintf("panic: %v%s", r, panicSite()))
			}
		}()
		c.Run(t)
	}()
	select {
	case <-done:
	case <-cctx.Done():
		select {
		case <-done:
		case <-time.After(grace):
			t.end(report.Fail, fmt.Sprintf("abandoned: did not return within %v (%v)", timeout, cctx.Err()))
		}
	}
	status, msg := t.outcome()
	return report.Case{Name: c.Name, Status: status, DurationMS: time.Since(start).Milliseconds(), Message: msg}
}

// panicSite names the file and line that panicked, for the case's message.
// It is called from the recovering deferred function.
func panicSite() string {
	pc := make([]uintptr, 32)
	frames := runtime.CallersFrames(pc[:runtime.Callers(3, pc)])
	for {
		f, more := frames.Next()
		if !strings.HasPrefix(f.Function, "runtime.") {
			return fmt.Sprintf(" (at %s:%d)", filepath.Base(f.File), f.Line)
		}
		if !more {
			return ""
		}
	}
}
