// Package health checks running services without ever blocking PID 1's
// event loop, and holds the rules that turn check results into state
// changes (Counter).
//
// A Manager runs one goroutine per watched process. It checks at once, then
// every Interval on a grid shared by all watches (see next), so that the
// checks of many services wake PID 1 together rather than one by one; each
// check has Timeout to give its verdict, and its Result is queued for the
// loop, which learns of it by selecting on Pending and collects it with
// Take. A command check's output goes to Options.Output through one file
// per watch, opened at its first check.
// Methods (config.Health.Method; docs/HEALTH.md has the user's view):
//
//   - command: /bin/sh -c Command in a process group of its own, its output
//     to Options.Output; exit 0 passes. At Timeout the whole group is
//     killed with SIGKILL and the check fails; after every run whatever is
//     left of the group is killed too.
//   - file: File is read; an empty file, or one whose first line is "ok",
//     passes; "fail" or "fail:<reason>" fails, and so does anything else or
//     no file. A read that has not returned at Timeout (a hung file system)
//     fails the check, and the file is not read again until it returns.
//   - notify: the service reports itself on the notify socket (package
//     readiness receives and attributes the messages; the loop passes each
//     HEALTH= or WATCHDOG= line to Report). A check takes the latest report
//     no earlier check took, waiting up to Timeout for one: a service must
//     report at least once per Interval, and one that hangs stops passing.
//
// Reaping. As with package readiness, PID 1's loop reaps every child with
// wait4(-1), so the Manager forks command checks itself, with its process
// table locked, and the loop passes every exit that is no component's to
// Exited, which claims those of checks. With Options.Runner the checks are
// forked by a runner process instead (runner.go), whose own exit Exited
// claims the same way.
//
// Delivery. Results go to a queue, never to a channel send that could wait
// for the loop. Cancel and a replacing Watch drop the old watch's queued
// results, so once they return, Take never yields a result of the old watch.
package health

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"yakimg/yakiros/config"
	"yakimg/yakiros/supervise"
)

// Result is the outcome of one check.
type Result struct {
	Name   string
	Pid    int // the pid given to Watch
	OK     bool
	Reason string    // why the check failed; "" when it passed
	Start  time.Time // when the check began
	End    time.Time // when its verdict was known
}

// Options configure a Manager.
type Options struct {
	// Output opens where the output of name's command checks goes: the
	// Manager opens it at the first check of a watch, hands it to every
	// check as stdout and stderr, and closes it when the watch ends.
	// graph-resolver gives supervise.Logs.Pipe, so the output lands in the
	// component's log. nil discards it.
	Output func(name string) (*os.File, error)
	// Runner, if set, is the binary that runs the command checks as
	// RunnerName (runner.go): PID 1's own. Empty: the Manager forks them.
	Runner string
	// Log, if set, gets a line when the runner starts or ends.
	Log func(format string, args ...any)
}

// Manager runs health checks. Its methods never block on a check.
type Manager struct {
	opts    Options
	epoch   time.Time      // the origin of the grid checks run on (next)
	wg      sync.WaitGroup // the watches' goroutines
	pending chan struct{}  // holds a token while the queue may be non-empty

	mu      sync.Mutex
	watches map[string]*watch
	queue   []Result
	reports map[string]report // the latest notify report of each component
	seq     uint64            // numbers the reports
	closed  bool
	lastID  uint64            // numbers the watches
	byID    map[uint64]*watch // command watches the runner runs
	remote  *remote           // the runner, once started

	checks supervise.Waiters // running command checks: their exits, from PID 1's reaper
}

// report is one HEALTH= or WATCHDOG= line a service sent.
type report struct {
	pid  int
	line string
	seq  uint64
}

// watch is one Watch call. Its fields do not change, except taken and
// reading, which belong to its goroutine.
type watch struct {
	id       uint64
	name     string
	pid      int
	cfg      config.Health
	ctx      context.Context // ends at Cancel, replacement or Close
	cancel   context.CancelFunc
	reported chan struct{} // holds a token when a report arrived
	remote   bool          // the runner runs its checks; no goroutine here

	taken   uint64        // notify: the report the latest check took
	reading chan struct{} // file: closed when a read that timed out returns
	files   *checkFiles   // command: open while the watch runs checks
}

// NewManager returns a Manager with nothing to watch.
func NewManager(opts Options) *Manager {
	return &Manager{
		opts:    opts,
		epoch:   time.Now(),
		pending: make(chan struct{}, 1),
		watches: map[string]*watch{},
		reports: map[string]report{},
		byID:    map[uint64]*watch{},
	}
}

func (m *Manager) logf(format string, args ...any) {
	if m.opts.Log != nil {
		m.opts.Log(format, args...)
	}
}

// Watch starts checking process pid of component name, replacing an
// earlier watch of name. The first check runs at once.
func (m *Manager) Watch(name string, pid int, cfg config.Health) error {
	switch {
	case cfg.Method != config.HealthCommand && cfg.Method != config.HealthFile && cfg.Method != config.HealthNotify:
		return fmt.Errorf("health of %s: no check for method %q", name, cfg.Method)
	case cfg.Interval <= 0 || cfg.Timeout <= 0:
		return fmt.Errorf("health of %s: interval %v and timeout %v must be positive", name, cfg.Interval, cfg.Timeout)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &watch{name: name, pid: pid, cfg: cfg, ctx: ctx, cancel: cancel, reported: make(chan struct{}, 1)}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		cancel()
		return fmt.Errorf("health of %s: manager closed", name)
	}
	m.dropLocked(name)
	m.lastID++
	w.id = m.lastID
	m.watches[name] = w
	if cfg.Method == config.HealthCommand && m.opts.Runner != "" {
		m.byID[w.id] = w
		w.remote = true
		err := m.sendWatchLocked(w)
		if err == nil {
			return nil
		}
		// Checks forked here cost PID 1 more, but they run.
		m.logf("health of %s: %v; forking its checks from PID 1", name, err)
		delete(m.byID, w.id)
		w.remote = false
	}
	m.wg.Add(1)
	go m.run(w)
	return nil
}

// Cancel ends the watch of name, if any, drops its queued results and
// forgets its reports. A running check is killed; Cancel does not wait.
func (m *Manager) Cancel(name string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.dropLocked(name)
	delete(m.reports, name)
}

// Report hands over a HEALTH= or WATCHDOG= line that process pid of
// component name sent (readiness.Event.Health). It is kept until a check of
// that process takes it or a later report replaces it.
func (m *Manager) Report(name string, pid int, line string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return
	}
	m.seq++
	m.reports[name] = report{pid: pid, line: line, seq: m.seq}
	if w := m.watches[name]; w != nil && w.pid == pid {
		select {
		case w.reported <- struct{}{}:
		default:
		}
	}
}

// Pending receives when results may be queued; then call Take.
func (m *Manager) Pending() <-chan struct{} { return m.pending }

// Take returns the queued results, oldest first, and empties the queue.
func (m *Manager) Take() []Result {
	m.mu.Lock()
	defer m.mu.Unlock()
	q := m.queue
	m.queue = nil
	return q
}

// Close ends every watch and waits for their goroutines, none of which
// waits for the caller. Running checks are killed; their exits are still
// claimed by Exited.
func (m *Manager) Close() {
	m.mu.Lock()
	m.closed = true
	for _, w := range m.watches {
		w.cancel()
	}
	m.watches, m.queue, m.reports, m.byID = nil, nil, nil, nil
	if m.remote != nil {
		m.remote.conn.Close() // the runner sees the end, kills its checks and exits
	}
	m.mu.Unlock()
	m.wg.Wait()
}

// dropLocked ends the watch of name and forgets its queued results.
func (m *Manager) dropLocked(name string) {
	w := m.watches[name]
	if w == nil {
		return
	}
	w.cancel()
	delete(m.watches, name)
	if w.remote {
		delete(m.byID, w.id)
		if m.remote != nil {
			m.sendLocked(m.remote, runnerMsg{Cancel: w.id}, -1)
		}
	}
	kept := m.queue[:0]
	for _, r := range m.queue {
		if r.Name != name {
			kept = append(kept, r)
		}
	}
	m.queue = kept
}

// run checks w every Interval until w ends.
func (m *Manager) run(w *watch) {
	defer m.wg.Done()
	defer w.cancel()
	defer func() {
		if w.files != nil {
			w.files.close()
		}
	}()
	wait := time.NewTimer(0)
	defer wait.Stop()
	for {
		select {
		case <-w.ctx.Done():
			return
		case <-wait.C:
		}
		start := time.Now()
		ok, reason := m.check(w)
		end := time.Now()
		m.mu.Lock()
		if m.watches[w.name] != w {
			m.mu.Unlock()
			return
		}
		m.queue = append(m.queue, Result{Name: w.name, Pid: w.pid, OK: ok, Reason: reason, Start: start, End: end})
		select {
		case m.pending <- struct{}{}:
		default:
		}
		m.mu.Unlock()
		wait.Reset(time.Until(m.next(start, w.cfg.Interval)))
	}
}

// next is when the check after one that started at start runs: at the
// first multiple of interval since the Manager's epoch that is at least
// half an interval after start. So after its first check, each watch checks
// on a grid shared by all watches of its interval: PID 1 wakes once for all
// of them (their timers, SIGCHLDs and results coming together) rather than
// once for each.
func (m *Manager) next(start time.Time, interval time.Duration) time.Time {
	since := start.Add(interval / 2).Sub(m.epoch)
	k := (since + interval - 1) / interval
	return m.epoch.Add(k * interval)
}

// check runs one check of w under its timeout.
func (m *Manager) check(w *watch) (ok bool, reason string) {
	ctx, cancel := context.WithTimeout(w.ctx, w.cfg.Timeout)
	defer cancel()
	switch w.cfg.Method {
	case config.HealthCommand:
		return m.runCommand(ctx, w)
	case config.HealthFile:
		return w.readFile(ctx)
	default: // config.HealthNotify, as Watch ensured
		return m.awaitReport(ctx, w)
	}
}
