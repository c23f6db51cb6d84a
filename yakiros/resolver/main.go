// Package resolver is graph-resolver, YakirOS's PID 1: it mounts the kernel
// filesystems, loads the component graph, starts each component once its
// required capabilities are up, reaps every process, answers graphctl on the
// control socket and, on request, shuts everything down and powers off.
//
// Run as any other PID it is in test mode: no mounts, no killing of foreign
// processes, no power off; everything else is the same, and a shutdown
// request makes Main return.
//
// One event loop (loop.go) owns all state; signals, control requests, the
// config directory's watcher, the readiness manager (package readiness,
// which also keeps the readiness deadlines), the health manager (package
// health; health.go counts its results into DEGRADED, recovery and
// restarts) and timers reach it as events, and a resolution pass follows
// every one. lifecycle.go is a component's
// life: start, readiness, exit, stop (SIGTERM, then SIGKILL after
// stopGrace) and the restart policy. graphcmd.go finds the dependency
// cycles after every load and reload (their members stay in CYCLE, never
// started) and answers the analysis commands with package graph.
//
// A FAILED component starts again after a back-off of 1s doubling up to
// 30s while it has had fewer than restart_max starts within
// restart_window; past that it stays FAILED, reason "restarting too fast:
// N starts in W", until `graphctl resolve` or a reload resets the count. A
// component that loses a requirement is stopped and becomes INACTIVE, and
// starts again when the requirement returns; a new process is only ever
// started once the old one has been reaped. reload.go applies a changed
// config directory (SIGHUP, inotify, `graphctl reload`).
package resolver

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"

	"yakimg/yakiros/config"
	"yakimg/yakiros/control"
	"yakimg/yakiros/health"
	"yakimg/yakiros/isolate"
	"yakimg/yakiros/machine"
	"yakimg/yakiros/readiness"
	"yakimg/yakiros/supervise"
)

const usage = `Usage: graph-resolver [--config-dir DIR] [--control-socket PATH] [--notify-socket PATH] [--log-dir DIR] [--log-max SIZE]

YakirOS init: brings up the components declared in DIR/*.toml as their
required capabilities come up, and serves graphctl on the control socket.
Not running as PID 1 it runs in test mode and returns after a shutdown request.

A changed DIR is reloaded (SIGHUP, inotify, or graphctl reload): unchanged
components keep running, changed ones restart, removed ones stop, new ones
start. A failed component is restarted after a back-off (1s, doubling up to
30s) while it has had fewer than restart_max starts within restart_window;
past that it stays FAILED until graphctl resolve or a reload.

A service with a readiness method (file, command, notify, signal) provides
its capabilities only once ready; one not ready within readiness_timeout
fails. Components in a dependency cycle stay in state CYCLE, never
started; the rest of the graph comes up.

A service with a health check (health_check, health_file or health =
"notify") is checked every health_interval while it runs: it is DEGRADED
after health_fail_threshold consecutive failures (its capabilities stay up),
ACTIVE again after one pass, and stopped, FAILED and restarted after
health_restart_threshold consecutive failures.

Options:
  --config-dir DIR        component declarations (default /etc/graph.d)
  --control-socket PATH   control socket (default $GRAPHCTL_SOCKET or /run/graph-resolver.sock)
  --notify-socket PATH    datagram socket for READY=1 of notify services, passed to
                          them as NOTIFY_SOCKET (default /run/graph/notify.sock)
  --log-dir DIR           per-component logs, DIR/<name>.log (default /run/graph)
  --log-max SIZE          rotate a log to <name>.log.1 at this size: bytes, or with
                          a K, M or G suffix (default 1M)

Example:
  graph-resolver --config-dir ./graph.d --control-socket /tmp/gr.sock --notify-socket /tmp/graph/notify.sock --log-dir /tmp/graph
`

// bootMachine does PID 1's first duties and opens /dev/kmsg for its log
// (nil if that fails). Nothing here is fatal: the errors are for the log.
func bootMachine() (*os.File, []error) {
	errs := machine.MountEarly() // /dev/kmsg and /proc need them
	kmsg, err := os.OpenFile("/dev/kmsg", os.O_WRONLY, 0)
	if err != nil {
		errs = append(errs, fmt.Errorf("log to /dev/kmsg: %w", err))
	}
	for _, err := range []error{machine.UnlimitKmsg(), machine.DisableCtrlAltDel()} {
		if err != nil {
			errs = append(errs, err)
		}
	}
	return kmsg, errs
}

// Main runs graph-resolver with args (without the program name) and returns
// its exit status. As PID 1 it returns only if powering off failed.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	pid1 := os.Getpid() == 1
	if pid1 {
		// PID 1 is an event loop with helpers that mostly wait: one P
		// serves it, and spares it the wake-ups of idle threads handing
		// work to each other (costly where every switch is emulated).
		runtime.GOMAXPROCS(1)
	}
	fs := flag.NewFlagSet("graph-resolver", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	configDir := fs.String("config-dir", "/etc/graph.d", "")
	socket := fs.String("control-socket", control.SocketPath(), "")
	notifySocket := fs.String("notify-socket", "/run/graph/notify.sock", "")
	logDir := fs.String("log-dir", "/run/graph", "")
	logMax := byteSize(1 << 20)
	fs.Var(&logMax, "log-max", "")
	flagErr := fs.Parse(args)
	if flagErr == nil && fs.NArg() > 0 {
		flagErr = fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	switch {
	case errors.Is(flagErr, flag.ErrHelp):
		fmt.Fprint(stdout, usage)
		return 0
	case flagErr != nil && !pid1:
		fmt.Fprintf(stderr, "graph-resolver: %v\n\n%s", flagErr, usage)
		return 2
	}

	log := &logger{w: stderr}
	if pid1 {
		kmsg, warnings := bootMachine()
		if kmsg != nil {
			defer kmsg.Close()
			log.w = kmsg
		}
		log.Infof("graph-resolver starting (pid %d)", os.Getpid())
		// The kernel hands init the command-line words it does not
		// know; PID 1 must never exit over them.
		if flagErr != nil {
			log.Warnf("ignoring arguments %q: %v", args, flagErr)
		}
		for _, err := range warnings {
			log.Warnf("%v", err)
		}
	} else {
		log.Infof("graph-resolver starting (pid %d)", os.Getpid())
		log.Warnf("not running as PID 1: test mode (no mounts, no power off)")
	}

	comps, errs := config.Load(*configDir)
	for _, err := range errs {
		log.Errorf("rejected: %v", err)
	}
	// Before anything forks: it reserves the pids of the processes a
	// kexec checkpointed.
	after := loadAfterKexec(log, pid1, comps)
	// The control socket first: a second graph-resolver finds it taken
	// and gives up before touching anything of the first's.
	calls := make(chan *control.Call)
	srv, err := control.Listen(*socket, calls, log.Warnf)
	if err != nil {
		log.Errorf("control socket: %v", err)
		if !pid1 {
			return 1
		}
	} else {
		log.Infof("control socket ready: %s", *socket)
	}
	logs := supervise.NewLogs(*logDir, int64(logMax), log.Warnf)
	ready, readyErr := newReadiness(*notifySocket, logs, log)
	if ready != nil {
		defer func() {
			if err := ready.Close(); err != nil {
				log.Warnf("close readiness manager: %v", err)
			}
		}()
	}
	l := newLoop(log, pid1, *configDir, logs, ready, readyErr, comps, errs)
	l.setAfterKexec(after)
	if pid1 {
		if err := isolate.Mount(isolate.DefaultMount); err != nil {
			log.Warnf("%v; components with [resources] or [isolation] cannot start", err)
		}
	}
	defer l.closeIsolation()
	// Command checks run in a runner process (PID 1's own binary), so
	// that forking and reaping them costs PID 1 nothing; see
	// yakiros/health/runner.go.
	opts := health.Options{Output: logs.Pipe, Log: log.Infof}
	if self, err := os.Executable(); err != nil {
		log.Warnf("health check runner: %v; command checks are forked by PID 1", err)
	} else {
		opts.Runner = self
	}
	l.checks = health.NewManager(opts)
	defer l.checks.Close()
	if w, err := watchDir(*configDir, l.dirChanged); err != nil {
		log.Warnf("%v; reload with SIGHUP or graphctl reload", err)
	} else {
		defer w.Close()
	}

	action := l.run(ctx, calls)
	if srv != nil {
		if err := srv.Close(); err != nil {
			log.Warnf("close control socket: %v", err)
		}
	}
	if !pid1 {
		log.Infof("test mode: %v done, exiting", action)
		return 0
	}
	for _, err := range machine.Teardown() {
		log.Errorf("%v", err)
	}
	log.Infof("%v", action)
	log.Errorf("%v", machine.Halt(action))
	return 1
}

// newReadiness starts the readiness manager with its notify socket at
// path. Without the socket (say, its directory is read-only) file and
// command readiness still work; the error says why notify cannot. Only if
// even that fails is there no manager: then every component with a
// readiness method fails to start, saying why.
func newReadiness(path string, logs *supervise.Logs, log *logger) (*readiness.Manager, error) {
	opts := readiness.Options{NotifySocket: path, Output: logs.Pipe, Logf: log.Warnf}
	m, err := readiness.NewManager(opts)
	if err == nil {
		log.Infof("notify socket ready: %s", path)
		return m, nil
	}
	log.Errorf("readiness: %v; notify and signal readiness will time out", err)
	opts.NotifySocket = ""
	m, err2 := readiness.NewManager(opts)
	if err2 != nil {
		log.Errorf("readiness: %v; components with a readiness method cannot start", err2)
		return nil, err2
	}
	return m, nil
}

// byteSize is a size flag: bytes, or a number with a K, M or G suffix
// (binary multiples).
type byteSize int64

func (b *byteSize) String() string { return strconv.FormatInt(int64(*b), 10) }

func (b *byteSize) Set(s string) error {
	digits, mult := s, int64(1)
	if i := len(s) - 1; i > 0 && strings.IndexByte("KMG", s[i]) >= 0 {
		digits, mult = s[:i], map[byte]int64{'K': 1 << 10, 'M': 1 << 20, 'G': 1 << 30}[s[i]]
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || n <= 0 || n > (1<<62)/mult {
		return fmt.Errorf("size %q: want a positive number of bytes, optionally with K, M or G", s)
	}
	*b = byteSize(n * mult)
	return nil
}
