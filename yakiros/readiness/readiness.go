// Package readiness watches started services until they are ready, without
// ever blocking PID 1's event loop: every watch runs in its own goroutine and
// its outcome is queued for the loop, which learns of it by selecting on
// Pending and collects it with Take.
//
// Methods (config.Readiness.Method):
//
//   - none: ready at once.
//   - file: ready when File exists. Prepare removes a stale file before the
//     process starts; Watch then follows the path with one inotify instance
//     shared by all watches (an inotify watch on the nearest existing
//     ancestor directory, moved down as directories appear), checking after
//     every arming so a file created meanwhile is not missed.
//   - command: /bin/sh -c Command every Interval, each run killed with its
//     process group after min(Interval, time left); exit 0 is ready.
//   - notify: READY=1 on the datagram socket named by NOTIFY_SOCKET, sent by
//     the process or any process of its session (kernel-checked sender pid).
//   - signal: a signal cannot soundly be attributed to its sender (see
//     docs/READINESS.md), so it is treated exactly like notify.
//
// Reaping. PID 1's loop reaps every child with wait4(-1) (supervise.Reap), so
// a check process started here would be reaped there and could never be
// waited for here. The Manager therefore forks checks itself and takes their
// exit statuses from the loop: the loop passes every reaped exit to Exited,
// which claims the pids of checks. Checks are forked with the Manager's
// process table locked and Exited takes the same lock, so an exit is never
// reported before its pid is known. The loop never waits on a check: Exited
// only hands the status to a buffered channel.
//
// Delivery. Outcomes go to a queue, never to a channel send that could wait
// for the loop. Cancel and a replacing Watch drop the old watch's queued
// events, so once they return, Take never yields anything of the old watch.
//
// Use from the loop: Prepare before the fork; Env into the process's
// environment; Watch right after the fork; Cancel when the process ends or
// is stopped; on Pending, Take and apply each Event (its Pid names the
// process it is about); every reaped exit that is not a component's to
// Exited; Close at the end.
package readiness

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"

	"yakimg/yakiros/config"
	"yakimg/yakiros/supervise"
)

// ErrTimeout is wrapped by the error of a watch whose Timeout passed.
var ErrTimeout = errors.New("readiness timeout")

// Event is news of one watch. At most one of Ready, Err and Health is set:
// Ready and Err end the waiting; Health (from a notify service) may come at
// any time while the watch exists, and so may a Status event, which has
// none of the three set.
type Event struct {
	Name   string
	Pid    int // the pid given to Watch
	Ready  bool
	Err    error // errors.Is(Err, ErrTimeout) after the deadline
	Status string
	// Health is the latest HEALTH= or WATCHDOG= line of a message, whole
	// ("HEALTH=fail:disk full"); package health gives it its meaning.
	Health string
}

// Options configure a Manager.
type Options struct {
	// NotifySocket is where the notify socket is created (mode 0600,
	// replacing a stale socket); "" disables notify and signal readiness.
	NotifySocket string
	// Output opens where the output of one run of name's check goes; the
	// Manager passes it to the check as stdout and stderr and closes it
	// after the fork. graph-resolver gives supervise.Logs.Pipe, so check
	// output lands in the component's log under its size cap. nil discards
	// it.
	Output func(name string) (*os.File, error)
	// Logf reports what concerns no watch (stray notify messages, socket
	// errors); nil discards it. It is called from the Manager's goroutines
	// and must not call the Manager.
	Logf func(format string, args ...any)
}

// Manager runs readiness watches. Its methods never block on a watch.
type Manager struct {
	opts    Options
	notify  *net.UnixConn // nil without a notify socket
	files   *dirWatcher
	wg      sync.WaitGroup // every goroutine the Manager started
	pending chan struct{}  // holds a token while the queue may be non-empty

	mu      sync.Mutex
	watches map[string]*watch
	queue   []Event
	parked  []message // recent notify messages no watch claimed
	closed  bool

	checks supervise.Waiters // running checks: their exits, from PID 1's reaper
}

// watch is one Watch call. The fields up to poke never change; last
// belongs to the watch's goroutine; the others are guarded by Manager.mu.
type watch struct {
	name   string
	pid    int
	cfg    config.Readiness
	ctx    context.Context // ends at Cancel, replacement, Close or the deadline
	cancel context.CancelFunc
	poke   chan struct{} // holds a token when a probe should run now

	notified chan struct{} // closed on READY=1
	gotReady bool          // notified is closed
	waiting  bool          // no outcome yet

	last string // outcome of the latest check, for the timeout message
}

// wake asks the watch to probe now; a pending request suffices.
func (w *watch) wake() {
	select {
	case w.poke <- struct{}{}:
	default:
	}
}

// NewManager starts the shared inotify reader and, if opts.NotifySocket is
// set, the notify socket and its reader.
func NewManager(opts Options) (*Manager, error) {
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	m := &Manager{
		opts:    opts,
		pending: make(chan struct{}, 1),
		watches: map[string]*watch{},
	}
	files, err := newDirWatcher()
	if err != nil {
		return nil, err
	}
	m.files = files
	if opts.NotifySocket != "" {
		if m.notify, err = listenNotify(opts.NotifySocket); err != nil {
			files.close()
			return nil, err
		}
		m.wg.Add(1)
		go m.receive()
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		files.read()
	}()
	return m, nil
}

// Prepare readies the ground before the process of cfg is started: it
// removes a readiness file left by an earlier run, which would otherwise
// count as ready at once. Readiness files belong on a local file system
// (/run): the removal runs on the caller's goroutine.
func Prepare(cfg config.Readiness) error {
	if cfg.Method != config.ReadyFile {
		return nil
	}
	return removeStale(cfg.File)
}

// Env is what the process of cfg needs in its environment: NOTIFY_SOCKET for
// notify and signal readiness, nothing otherwise (some programs change
// behaviour when NOTIFY_SOCKET is set).
func (m *Manager) Env(cfg config.Readiness) []string {
	if m.notify == nil || (cfg.Method != config.ReadyNotify && cfg.Method != config.ReadySignal) {
		return nil
	}
	return []string{"NOTIFY_SOCKET=" + m.opts.NotifySocket}
}

// Watch starts watching the process pid of component name, replacing an
// earlier watch of name. Call it right after the fork: a notify message
// that arrives before is kept (the last few unclaimed ones are) and claimed
// here. A Timeout of 0 or less means no deadline. The watch, and with it
// Status events of a notify service, lasts until Cancel or the next Watch
// of name, even after the outcome.
func (m *Manager) Watch(name string, pid int, cfg config.Readiness) {
	ctx, cancel := context.WithCancel(context.Background())
	if cfg.Timeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, cfg.Timeout)
	}
	w := &watch{name: name, pid: pid, cfg: cfg, ctx: ctx, cancel: cancel,
		poke: make(chan struct{}, 1), notified: make(chan struct{}), waiting: true}
	if cfg.Method == config.ReadySignal {
		m.opts.Logf("component '%s': readiness by signal cannot be attributed to its sender; waiting for READY=1 on NOTIFY_SOCKET instead (docs/READINESS.md)", name)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		cancel()
		return
	}
	m.dropLocked(name)
	m.watches[name] = w
	if cfg.Method == config.ReadyNotify || cfg.Method == config.ReadySignal {
		m.claimLocked(w)
	}
	m.wg.Add(1)
	go m.run(w)
}

// Cancel ends the watch of name, if any, and drops its queued events.
// Running checks are killed; Cancel does not wait for that.
func (m *Manager) Cancel(name string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.dropLocked(name)
}

// Check probes name now (file: look again; command: run the check without
// waiting for the interval) and reports whether name is still waiting.
// A notify watch has nothing to probe.
func (m *Manager) Check(name string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	w := m.watches[name]
	if w == nil || !w.waiting {
		return false
	}
	w.wake()
	return true
}

// Pending receives when events may be queued; then call Take.
func (m *Manager) Pending() <-chan struct{} { return m.pending }

// Take returns the queued events, oldest first, and empties the queue.
func (m *Manager) Take() []Event {
	m.mu.Lock()
	defer m.mu.Unlock()
	q := m.queue
	m.queue = nil
	return q
}

// Close ends every watch, closes the notify socket (removing its file) and
// waits for the Manager's goroutines, none of which waits for the caller.
// Checks still running are killed; their exits are still claimed by Exited.
func (m *Manager) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	for _, w := range m.watches {
		w.cancel()
	}
	m.watches, m.queue, m.parked = nil, nil, nil
	m.mu.Unlock()

	var errs []error
	if m.notify != nil {
		errs = append(errs, m.notify.Close(), removeStale(m.opts.NotifySocket))
	}
	errs = append(errs, m.files.close())
	m.wg.Wait()
	return errors.Join(errs...)
}

// dropLocked ends the watch of name and forgets its queued events.
func (m *Manager) dropLocked(name string) {
	w := m.watches[name]
	if w == nil {
		return
	}
	w.cancel()
	delete(m.watches, name)
	kept := m.queue[:0]
	for _, ev := range m.queue {
		if ev.Name != name {
			kept = append(kept, ev)
		}
	}
	m.queue = kept
}

// queueLocked adds ev and makes sure Pending has a token.
func (m *Manager) queueLocked(ev Event) {
	m.queue = append(m.queue, ev)
	select {
	case m.pending <- struct{}{}:
	default:
	}
}

// statusLocked queues a Status event; one that is still queued is updated
// instead, so a chatty service cannot grow the queue.
func (m *Manager) statusLocked(w *watch, status string) {
	for i, ev := range m.queue {
		if ev.Name == w.name && !ev.Ready && ev.Err == nil && ev.Health == "" {
			m.queue[i].Status = status
			return
		}
	}
	m.queueLocked(Event{Name: w.name, Pid: w.pid, Status: status})
}

// healthLocked queues a Health event; one that is still queued is updated
// instead: a health check takes only the latest report.
func (m *Manager) healthLocked(w *watch, line string) {
	for i, ev := range m.queue {
		if ev.Name == w.name && ev.Health != "" {
			m.queue[i].Health = line
			return
		}
	}
	m.queueLocked(Event{Name: w.name, Pid: w.pid, Health: line})
}

// run waits for w's outcome and queues it, unless w was cancelled.
func (m *Manager) run(w *watch) {
	defer m.wg.Done()
	defer w.cancel()
	var err error
	switch w.cfg.Method {
	case config.ReadyNone:
	case config.ReadyFile:
		err = m.awaitFile(w)
	case config.ReadyCommand:
		err = m.pollCommand(w)
	case config.ReadyNotify, config.ReadySignal:
		err = m.awaitNotify(w)
	default:
		err = fmt.Errorf("unknown readiness method %q", w.cfg.Method)
	}
	switch ctxErr := w.ctx.Err(); {
	case errors.Is(ctxErr, context.Canceled):
		return // nobody wants the outcome any more
	case err != nil && errors.Is(ctxErr, context.DeadlineExceeded):
		err = fmt.Errorf("%w after %v", ErrTimeout, w.cfg.Timeout)
		if w.last != "" {
			err = fmt.Errorf("%w (last check: %s)", err, w.last)
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.watches[w.name] != w {
		return
	}
	w.waiting = false
	m.queueLocked(Event{Name: w.name, Pid: w.pid, Ready: err == nil, Err: err})
}
