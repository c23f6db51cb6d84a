package resolver

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"yakimg/yakiros/capability"
	"yakimg/yakiros/config"
	"yakimg/yakiros/control"
	"yakimg/yakiros/machine"
	"yakimg/yakiros/supervise"
)

// stopGrace is how long a process has between SIGTERM and SIGKILL.
const stopGrace = 3 * time.Second

// unit is a component and what the loop knows about it at run time.
type unit struct {
	config.Component
	state  State
	pid    int       // latest process; it is running while alive is true
	alive  bool      // forked and not yet reaped
	since  time.Time // when the latest process started
	starts int
	reason string    // why the state is FAILED, STOPPING or INACTIVE again
	killAt time.Time // when a process that was sent SIGTERM gets SIGKILL
}

// loop is the single owner of all run-time state: units, capabilities and
// shutdown progress. Everything reaches it as an event on one goroutine, so
// nothing here needs a lock.
type loop struct {
	log     *logger
	pid1    bool
	logDir  string
	units   []*unit // the kernel pseudo-component first, then files in order
	byName  map[string]*unit
	caps    *capability.Registry
	started chan supervise.Started
	quit    chan struct{} // closed when run returns
	halt    *shutdown     // non-nil once shutdown has begun
}

func newLoop(log *logger, pid1 bool, logDir string, comps []config.Component) *loop {
	l := &loop{
		log:     log,
		pid1:    pid1,
		logDir:  logDir,
		byName:  map[string]*unit{},
		caps:    capability.NewRegistry(),
		started: make(chan supervise.Started),
		quit:    make(chan struct{}),
	}
	kernel := &unit{
		Component: config.Component{Name: capability.Kernel, Binary: "[kernel]", Type: config.Service,
			Provides: capability.KernelCapabilities()},
		state: Active,
	}
	l.add(kernel)
	l.provide(kernel)
	for _, c := range comps {
		l.add(&unit{Component: c})
		log.Infof("loaded component '%s' from %s", c.Name, c.File)
	}
	log.Infof("loaded %d components", len(comps))
	return l
}

func (l *loop) add(u *unit) {
	l.units = append(l.units, u)
	l.byName[u.Name] = u
}

// run handles events until shutdown is complete and returns how the machine
// should end.
func (l *loop) run(ctx context.Context, calls <-chan *control.Call) machine.Action {
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, syscall.SIGCHLD, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	defer close(l.quit)

	timer := time.NewTimer(time.Hour)
	timer.Stop()
	ctxDone := ctx.Done()
	l.log.Infof("performing initial graph resolution")
	l.resolve()
	l.log.Infof("entering main event loop")
	for !l.finished() {
		l.arm(timer)
		select {
		case sig := <-sigs:
			switch sig {
			case syscall.SIGCHLD:
				l.reap()
			case syscall.SIGTERM:
				l.beginShutdown(machine.PowerOff, "SIGTERM")
			case syscall.SIGINT:
				l.beginShutdown(machine.Reboot, "SIGINT (Ctrl-Alt-Del)")
			}
		case s := <-l.started:
			l.onStarted(s)
		case c := <-calls:
			c.Reply(l.command(c.Request, c.PeerPid))
		case <-timer.C:
			l.killOverdue()
		case <-ctxDone:
			ctxDone = nil
			l.beginShutdown(machine.PowerOff, "context cancelled")
		}
		l.resolve()
	}
	return l.halt.action
}

// arm sets timer to the next deadline, if any.
func (l *loop) arm(timer *time.Timer) {
	var next time.Time
	consider := func(t time.Time) {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	for _, u := range l.units {
		consider(u.killAt)
	}
	if l.halt != nil {
		consider(l.halt.deadline)
	}
	timer.Stop()
	if !next.IsZero() {
		timer.Reset(time.Until(next))
	}
}

// resolve starts every inactive component whose requirements are all up and
// stops every running one that lost a requirement, until nothing changes.
// Once shutdown has begun it advances shutdown instead.
func (l *loop) resolve() {
	if l.halt != nil {
		l.advanceShutdown()
		return
	}
	passes := 0
	for changed := true; changed; passes++ {
		changed = false
		for _, u := range l.units {
			switch missing := l.missing(u); {
			case u.state == Inactive && missing == "":
				l.start(u)
				changed = true
			case u.alive && u.state != Stopping && u.state != Failed && missing != "":
				l.stop(u, fmt.Sprintf("requirement '%s' is down", missing))
				changed = true
			}
		}
	}
	if passes > 1 {
		up := 0
		for _, c := range l.caps.List() {
			if c.Status == capability.Up {
				up++
			}
		}
		l.log.Infof("graph stable after %d passes (%d components, %d capabilities up)", passes, len(l.units), up)
	}
}

// missing returns a requirement of u that is down, or "".
func (l *loop) missing(u *unit) string {
	for _, c := range u.Requires {
		if !l.caps.Up(c) {
			return c
		}
	}
	return ""
}

func (l *loop) start(u *unit) {
	u.starts++
	pid, err := supervise.Start(supervise.Spec{Name: u.Name, Binary: u.Binary, Args: u.Args, LogDir: l.logDir},
		func(s supervise.Started) {
			select {
			case l.started <- s:
			case <-l.quit:
			}
		})
	if err != nil {
		u.state, u.reason = Failed, err.Error()
		l.log.Errorf("component '%s' failed to start: %v", u.Name, err)
		return
	}
	u.state, u.reason = Starting, ""
	u.pid, u.alive, u.since = pid, true, time.Now()
	l.log.Infof("starting component '%s' (pid %d)", u.Name, pid)
}

// onStarted learns whether a process reached its binary.
func (l *loop) onStarted(s supervise.Started) {
	u := l.byName[s.Name]
	if u == nil || u.pid != s.Pid {
		return // an earlier process of the component
	}
	if s.Err != nil {
		u.reason = s.Err.Error()
		l.log.Errorf("component '%s' failed to start: %v", u.Name, s.Err)
		if u.state == Starting {
			u.state = Failed
		}
		return
	}
	if u.state == Starting && u.Type == config.Service {
		u.state = Active
		l.log.Infof("component '%s' is active (pid %d)", u.Name, u.pid)
		l.provide(u)
	}
}

// reap collects exited children and updates their components.
func (l *loop) reap() {
	exits, more, err := supervise.Reap()
	if err != nil {
		l.log.Errorf("%v", err)
	}
	if l.halt != nil {
		l.halt.children = more
	}
	for _, e := range exits {
		l.exited(e)
	}
}

func (l *loop) exited(e supervise.Exit) {
	var u *unit
	for _, c := range l.units {
		if c.alive && c.pid == e.Pid {
			u = c
		}
	}
	if u == nil {
		l.log.Infof("reaped orphan pid %d (%v)", e.Pid, e)
		return
	}
	u.alive, u.killAt = false, time.Time{}
	switch {
	case u.state == Stopping:
		u.state = Inactive
		l.log.Infof("component '%s' stopped (%v)", u.Name, e)
	case u.state == Failed:
		// Its exec failed; the reason is already known.
	case u.Type == config.Oneshot && u.state == Starting && e.Success():
		u.state = Done
		l.log.Infof("oneshot '%s' completed", u.Name)
		l.provide(u)
	default:
		u.state, u.reason = Failed, e.String()
		l.log.Errorf("component '%s' %v", u.Name, e)
		l.withdraw(u)
	}
}

// stop withdraws u's capabilities and asks its process to end; killOverdue
// sends SIGKILL if it has not ended after stopGrace.
func (l *loop) stop(u *unit, why string) {
	l.withdraw(u)
	u.state, u.reason = Stopping, why
	u.killAt = time.Now().Add(stopGrace)
	l.log.Infof("stopping component '%s' (pid %d): %s", u.Name, u.pid, why)
	if err := supervise.Signal(u.pid, syscall.SIGTERM); err != nil {
		l.log.Warnf("component '%s': %v", u.Name, err)
	}
}

func (l *loop) killOverdue() {
	now := time.Now()
	for _, u := range l.units {
		if u.alive && !u.killAt.IsZero() && !now.Before(u.killAt) {
			u.killAt = time.Time{}
			l.log.Warnf("component '%s' (pid %d) ignored SIGTERM for %v; sending SIGKILL", u.Name, u.pid, stopGrace)
			if err := supervise.Signal(u.pid, syscall.SIGKILL); err != nil {
				l.log.Warnf("component '%s': %v", u.Name, err)
			}
		}
	}
}

func (l *loop) provide(u *unit) {
	for _, c := range u.Provides {
		if l.caps.Provide(c, u.Name) {
			l.log.Infof("capability UP: %s (provided by %s)", c, u.Name)
		}
	}
}

func (l *loop) withdraw(u *unit) {
	for _, c := range u.Provides {
		if l.caps.Withdraw(c, u.Name) {
			l.log.Infof("capability DOWN: %s", c)
		}
	}
}

// hasRunningDependent reports whether a running component other than u requires
// something u provides.
func (l *loop) hasRunningDependent(u *unit) bool {
	for _, v := range l.units {
		if v != u && v.alive && slices.ContainsFunc(v.Requires, func(c string) bool {
			return slices.Contains(u.Provides, c)
		}) {
			return true
		}
	}
	return false
}

// unitOf returns the running component whose session pid belongs to, if any.
func (l *loop) unitOf(pid int) *unit {
	sid, err := unix.Getsid(pid)
	if err != nil {
		return nil
	}
	for _, u := range l.units {
		if u.alive && u.pid == sid {
			return u
		}
	}
	return nil
}
