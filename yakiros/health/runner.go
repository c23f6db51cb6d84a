package health

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"yakimg/yakiros/config"
	"yakimg/yakiros/supervise"
)

// Command checks in a runner process.
//
// A command check forked by PID 1 costs PID 1 the fork, a SIGCHLD, a reap
// and a hand-over between goroutines, every check: with 20 services checked
// every second that was nearly all of PID 1's CPU time. With Options.Runner
// set, the Manager starts one runner process instead (PID 1's own binary
// under the name RunnerName) and hands it each command watch once, with the
// file its output goes to. The runner forks, times out and reaps the
// checks, on the shared grid, with a Manager of its own, and sends their
// results back together, one message for all the checks of a grid tick, so
// PID 1 wakes about once per tick whatever the number of checks.
//
// The runner keeps nothing PID 1 does not have: if it dies, the Manager
// starts another and hands it the watches again. The results it sends keep
// their own Start and End, so batching delays their delivery (by at most
// runnerBatch) but not their timestamps.

// RunnerName is argv[0] of the runner process.
const RunnerName = "yakiros-health-runner"

const (
	// The runner sends results once none has come for runnerQuiet, or
	// runnerBatch after the first: the checks of one grid tick end over a
	// spread of time (they are forked one after the other), and should
	// travel together.
	runnerQuiet = 50 * time.Millisecond
	runnerBatch = 300 * time.Millisecond
	// runnerWriteTimeout bounds a send to the runner: a runner that does
	// not read is killed and replaced rather than ever blocking PID 1.
	runnerWriteTimeout = time.Second
	// runnerRestartDelay spaces out the restarts of a runner that dies at
	// once.
	runnerRestartDelay = time.Second
	// runnerFD is the runner's end of its socket.
	runnerFD = 3
	// maxResultsPerMessage keeps a message well inside the socket buffer.
	maxResultsPerMessage = 256
)

// runnerMsg is one message on the runner's SOCK_SEQPACKET socket, JSON
// encoded; one field is set. A watch may come with its output descriptor
// (SCM_RIGHTS).
type runnerMsg struct {
	Watch   *runnerWatch   `json:"watch,omitempty"`
	Cancel  uint64         `json:"cancel,omitempty"`
	Results []runnerResult `json:"results,omitempty"`
}

type runnerWatch struct {
	ID       uint64        `json:"id"`
	Command  string        `json:"command"`
	Interval time.Duration `json:"interval"`
	Timeout  time.Duration `json:"timeout"`
}

type runnerResult struct {
	ID     uint64 `json:"id"`
	OK     bool   `json:"ok"`
	Reason string `json:"reason,omitempty"`
	Start  int64  `json:"start"` // Unix nanoseconds
	End    int64  `json:"end"`
}

// remote is PID 1's side of one runner process.
type remote struct {
	pid  int
	conn *os.File // non-blocking, so writes can time out
}

// sendMsg writes msg with the descriptor fd (-1 for none) as one message.
func sendMsg(conn *os.File, msg runnerMsg, fd int) error {
	data, err := json.Marshal(msg)
	if err != nil {
		return err
	}
	var oob []byte
	if fd >= 0 {
		oob = unix.UnixRights(fd)
	}
	rc, err := conn.SyscallConn()
	if err != nil {
		return err
	}
	var sendErr error
	err = rc.Write(func(s uintptr) bool {
		sendErr = unix.Sendmsg(int(s), data, oob, nil, 0)
		return !errors.Is(sendErr, unix.EAGAIN)
	})
	return errors.Join(err, sendErr)
}

// recvMsg reads one message and the descriptor that came with it, if any.
func recvMsg(conn *os.File, buf, oob []byte) (runnerMsg, *os.File, error) {
	rc, err := conn.SyscallConn()
	if err != nil {
		return runnerMsg{}, nil, err
	}
	var n, oobn int
	var recvErr error
	err = rc.Read(func(s uintptr) bool {
		n, oobn, _, _, recvErr = unix.Recvmsg(int(s), buf, oob, unix.MSG_CMSG_CLOEXEC)
		return !errors.Is(recvErr, unix.EAGAIN)
	})
	if err = errors.Join(err, recvErr); err != nil {
		return runnerMsg{}, nil, err
	}
	if n == 0 {
		return runnerMsg{}, nil, io.EOF
	}
	var f *os.File
	if oobn > 0 {
		cmsgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil {
			return runnerMsg{}, nil, fmt.Errorf("control message: %w", err)
		}
		for _, c := range cmsgs {
			fds, err := unix.ParseUnixRights(&c)
			if err != nil {
				continue
			}
			for _, fd := range fds {
				if f == nil {
					f = os.NewFile(uintptr(fd), "check output")
				} else {
					unix.Close(fd)
				}
			}
		}
	}
	var msg runnerMsg
	if err := json.Unmarshal(buf[:n], &msg); err != nil {
		if f != nil {
			f.Close()
		}
		return runnerMsg{}, nil, fmt.Errorf("decode %q: %w", buf[:n], err)
	}
	return msg, f, nil
}

// socketPair returns PID 1's end (non-blocking) and the runner's.
func socketPair() (*os.File, *os.File, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("socketpair: %w", err)
	}
	if err := unix.SetNonblock(fds[0], true); err != nil {
		unix.Close(fds[0])
		unix.Close(fds[1])
		return nil, nil, fmt.Errorf("socketpair: %w", err)
	}
	return os.NewFile(uintptr(fds[0]), "health runner"), os.NewFile(uintptr(fds[1]), "health runner (runner's end)"), nil
}

// remoteLocked returns the running runner, starting one if there is none.
func (m *Manager) remoteLocked() (*remote, error) {
	if m.remote != nil {
		return m.remote, nil
	}
	conn, theirs, err := socketPair()
	if err != nil {
		return nil, fmt.Errorf("health runner: %w", err)
	}
	defer theirs.Close()
	null, err := os.Open(os.DevNull)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("health runner: %w", err)
	}
	defer null.Close()
	// Its stderr is PID 1's: the runner writes only when it fails.
	pid, exited, err := m.checks.Fork(func() (int, error) {
		return syscall.ForkExec(m.opts.Runner, []string{RunnerName}, &syscall.ProcAttr{
			Dir:   "/",
			Env:   os.Environ(),
			Files: []uintptr{null.Fd(), null.Fd(), os.Stderr.Fd(), theirs.Fd()},
		})
	})
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("health runner: start %s: %w", m.opts.Runner, err)
	}
	r := &remote{pid: pid, conn: conn}
	m.remote = r
	m.logf("health check runner pid %d started", pid)
	go m.receive(r)
	go m.superviseRunner(r, exited, time.Now())
	return r, nil
}

// sendWatchLocked hands w to the runner, with its output file.
func (m *Manager) sendWatchLocked(w *watch) error {
	r, err := m.remoteLocked()
	if err != nil {
		return err
	}
	fd := -1
	if m.opts.Output != nil {
		out, err := m.opts.Output(w.name)
		if err != nil {
			return fmt.Errorf("health of %s: check output: %w", w.name, err)
		}
		defer out.Close() // the runner has its own copy once sent
		fd = int(out.Fd())
	}
	msg := runnerMsg{Watch: &runnerWatch{ID: w.id, Command: w.cfg.Command, Interval: w.cfg.Interval, Timeout: w.cfg.Timeout}}
	return m.sendLocked(r, msg, fd)
}

// sendLocked sends msg to r; a runner that does not take it in time is
// killed, and replaced once its exit is reaped.
func (m *Manager) sendLocked(r *remote, msg runnerMsg, fd int) error {
	r.conn.SetWriteDeadline(time.Now().Add(runnerWriteTimeout))
	err := sendMsg(r.conn, msg, fd)
	if err != nil {
		m.logf("health check runner pid %d: send: %v; killing it", r.pid, err)
		unix.Kill(r.pid, unix.SIGKILL)
		return fmt.Errorf("health runner: %w", err)
	}
	return nil
}

// receive queues the results r sends until its socket ends.
func (m *Manager) receive(r *remote) {
	buf, oob := make([]byte, 1<<20), make([]byte, unix.CmsgSpace(4))
	for {
		msg, f, err := recvMsg(r.conn, buf, oob)
		if f != nil {
			f.Close()
		}
		if err != nil {
			return
		}
		m.mu.Lock()
		queued := false
		for _, res := range msg.Results {
			w := m.byID[res.ID]
			if w == nil || m.watches[w.name] != w {
				continue // cancelled or replaced since
			}
			m.queue = append(m.queue, Result{Name: w.name, Pid: w.pid, OK: res.OK, Reason: res.Reason,
				Start: time.Unix(0, res.Start), End: time.Unix(0, res.End)})
			queued = true
		}
		if queued {
			select {
			case m.pending <- struct{}{}:
			default:
			}
		}
		m.mu.Unlock()
	}
}

// superviseRunner waits for r's exit (claimed by Exited) and, unless the
// Manager closed, starts another runner with the current command watches.
func (m *Manager) superviseRunner(r *remote, exited <-chan supervise.Exit, started time.Time) {
	e := <-exited
	r.conn.Close()
	m.mu.Lock()
	if m.remote == r {
		m.remote = nil
	}
	closed := m.closed
	m.mu.Unlock()
	if closed {
		return
	}
	m.logf("health check runner pid %d %v; starting another", r.pid, e)
	if lived := time.Since(started); lived < runnerRestartDelay {
		time.Sleep(runnerRestartDelay - lived)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed || m.remote != nil {
		return
	}
	for _, w := range m.watches {
		if w.remote {
			if err := m.sendWatchLocked(w); err != nil {
				m.logf("health of %s: %v", w.name, err)
			}
		}
	}
}

// RunnerMain is the runner process: it runs the command checks PID 1 hands
// it on descriptor 3 until PID 1 closes its end. It returns the exit code.
func RunnerMain() int {
	// The runner forks and waits; one P does that without threads waking
	// each other.
	runtime.GOMAXPROCS(1)
	// Orphans of the checks come back here rather than to PID 1, which is
	// spared their reaping too.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		fmt.Fprintf(os.Stderr, "%s: PR_SET_CHILD_SUBREAPER: %v\n", RunnerName, err)
	}
	if err := unix.SetNonblock(runnerFD, true); err != nil {
		fmt.Fprintf(os.Stderr, "%s: descriptor %d: %v\n", RunnerName, runnerFD, err)
		return 1
	}
	conn := os.NewFile(runnerFD, "health runner")
	if err := serveRunner(conn); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", RunnerName, err)
		return 1
	}
	return 0
}

// serveRunner runs the watches that arrive on conn with a Manager of its
// own until conn ends; the process must be the checks' reaper.
func serveRunner(conn *os.File) error {
	defer conn.Close()
	var mu sync.Mutex
	outputs := map[string]*os.File{} // sent with a watch, until its first check takes it
	local := NewManager(Options{Output: func(name string) (*os.File, error) {
		mu.Lock()
		defer mu.Unlock()
		f := outputs[name]
		delete(outputs, name)
		if f == nil {
			return os.OpenFile(os.DevNull, os.O_WRONLY, 0)
		}
		return f, nil
	}})
	defer local.Close()

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGCHLD)
	defer signal.Stop(sigs)
	go func() {
		for range sigs {
			exits, _, _ := supervise.Reap()
			for _, e := range exits {
				local.Exited(e) // an orphan's exit is nobody's
			}
		}
	}()

	var sendErr error
	var sendMu sync.Mutex
	go func() {
		for range local.Pending() {
			var results []runnerResult
			take := func() {
				for _, r := range local.Take() {
					id, _ := strconv.ParseUint(r.Name, 10, 64)
					results = append(results, runnerResult{ID: id, OK: r.OK, Reason: r.Reason, Start: r.Start.UnixNano(), End: r.End.UnixNano()})
				}
			}
			take()
			last := time.NewTimer(runnerBatch)
			for collecting := true; collecting; {
				quiet := time.NewTimer(runnerQuiet)
				select {
				case <-local.Pending():
					take()
				case <-quiet.C:
					collecting = false
				case <-last.C:
					collecting = false
				}
				quiet.Stop()
			}
			last.Stop()
			for len(results) > 0 {
				n := min(len(results), maxResultsPerMessage)
				if err := sendMsg(conn, runnerMsg{Results: results[:n]}, -1); err != nil {
					sendMu.Lock()
					sendErr = err
					sendMu.Unlock()
					conn.Close() // ends the receiving loop below
					return
				}
				results = results[n:]
			}
		}
	}()

	buf, oob := make([]byte, 1<<16), make([]byte, unix.CmsgSpace(4))
	for {
		msg, f, err := recvMsg(conn, buf, oob)
		if err != nil {
			mu.Lock()
			for _, f := range outputs {
				f.Close()
			}
			mu.Unlock()
			sendMu.Lock()
			defer sendMu.Unlock()
			if sendErr != nil {
				return fmt.Errorf("send results: %w", sendErr)
			}
			if errors.Is(err, io.EOF) {
				return nil // PID 1 let go
			}
			return fmt.Errorf("receive: %w", err)
		}
		switch {
		case msg.Watch != nil:
			name := strconv.FormatUint(msg.Watch.ID, 10)
			mu.Lock()
			if old := outputs[name]; old != nil {
				old.Close()
			}
			if f != nil {
				outputs[name] = f
			}
			mu.Unlock()
			cfg := config.Health{Method: config.HealthCommand, Command: msg.Watch.Command, Interval: msg.Watch.Interval, Timeout: msg.Watch.Timeout}
			if err := local.Watch(name, 0, cfg); err != nil {
				fmt.Fprintf(os.Stderr, "%s: %v\n", RunnerName, err)
			}
		case msg.Cancel != 0:
			name := strconv.FormatUint(msg.Cancel, 10)
			local.Cancel(name)
			mu.Lock()
			if old := outputs[name]; old != nil {
				old.Close()
				delete(outputs, name)
			}
			mu.Unlock()
			if f != nil {
				f.Close()
			}
		default:
			if f != nil {
				f.Close()
			}
		}
	}
}
