package resolver

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"yakimg/yakiros/capability"
	"yakimg/yakiros/config"
	"yakimg/yakiros/control"
	"yakimg/yakiros/machine"
	"yakimg/yakiros/supervise"
)

// reloadDebounce is how long the config directory must be quiet before a
// change seen by inotify is loaded: editors save through a temporary file
// and a rename, and one reload should see the finished result.
const reloadDebounce = 200 * time.Millisecond

// loop is the single owner of all run-time state: units, capabilities,
// timers and shutdown progress. Everything reaches it as an event on one
// goroutine, so nothing here needs a lock, and nothing here may block:
// slow work (reading a log for `log`) runs elsewhere and replies by itself.
type loop struct {
	log       *logger
	pid1      bool
	configDir string
	logs      *supervise.Logs
	units     []*unit // the kernel pseudo-component first, then files in order
	byName    map[string]*unit
	byPid     map[int]*unit // units with a process not yet reaped
	caps      *capability.Registry
	rejected  []error // the files the latest load rejected, for validate

	// readiness carries the reports of readiness watchers (one per method
	// of config.Readiness, run outside the loop) about a READY_WAIT unit.
	readiness chan readinessReport
	// dirChanged is signalled by the config directory's watcher.
	dirChanged chan struct{}
	reloadAt   time.Time     // when a debounced reload is due
	quit       chan struct{} // closed when run returns, for senders
	halt       *shutdown     // non-nil once shutdown has begun
}

// readinessReport is a watcher's verdict on one process of a component:
// ready (err nil) or never going to be (err says why).
type readinessReport struct {
	name string
	pid  int
	err  error
}

func newLoop(log *logger, pid1 bool, configDir string, logs *supervise.Logs, comps []config.Component, rejected []error) *loop {
	l := &loop{
		log:        log,
		pid1:       pid1,
		configDir:  configDir,
		logs:       logs,
		byName:     map[string]*unit{},
		byPid:      map[int]*unit{},
		caps:       capability.NewRegistry(),
		rejected:   rejected,
		readiness:  make(chan readinessReport),
		dirChanged: make(chan struct{}, 1),
		quit:       make(chan struct{}),
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
	signal.Notify(sigs, syscall.SIGCHLD, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
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
			case syscall.SIGHUP:
				l.reload("SIGHUP")
			}
		case r := <-l.readiness:
			l.onReadiness(r)
		case <-l.dirChanged:
			l.reloadAt = time.Now().Add(reloadDebounce)
		case c := <-calls:
			l.handle(c)
		case <-timer.C:
			l.tick(time.Now())
		case <-ctxDone:
			ctxDone = nil
			l.beginShutdown(machine.PowerOff, "context cancelled")
		}
		l.resolve()
	}
	return l.halt.action
}

// arm sets timer to the earliest deadline: a kill after the grace period,
// the end of a restart back-off, a readiness timeout, a debounced reload or
// a shutdown phase.
func (l *loop) arm(timer *time.Timer) {
	var next time.Time
	consider := func(t time.Time) {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	for _, u := range l.units {
		consider(u.killAt)
		consider(u.restartAt)
		consider(u.readyBy)
	}
	consider(l.reloadAt)
	if l.halt != nil {
		consider(l.halt.deadline)
	}
	timer.Stop()
	if !next.IsZero() {
		timer.Reset(time.Until(next))
	}
}

// tick acts on every deadline that has passed.
func (l *loop) tick(now time.Time) {
	for _, u := range l.units {
		if !u.killAt.IsZero() && !now.Before(u.killAt) {
			l.kill(u)
		}
		if !u.restartAt.IsZero() && !now.Before(u.restartAt) {
			u.restartAt = time.Time{}
			u.state = Inactive
			l.log.Infof("component '%s': back-off over, restarting", u.Name)
		}
		if !u.readyBy.IsZero() && !now.Before(u.readyBy) {
			l.stop(u, fmt.Sprintf("readiness timeout after %v", u.readinessTimeout()), Failed)
		}
	}
	if !l.reloadAt.IsZero() && !now.Before(l.reloadAt) {
		l.reloadAt = time.Time{}
		l.reload("change in " + l.configDir)
	}
}

// resolve starts every inactive component whose requirements are all up and
// stops every running one that lost a requirement, until nothing changes,
// and returns the components it started. Once shutdown has begun it
// advances shutdown instead.
func (l *loop) resolve() (started []*unit) {
	if l.halt != nil {
		l.advanceShutdown()
		return nil
	}
	passes := 0
	for changed := true; changed; passes++ {
		changed = false
		for _, u := range l.units {
			switch missing := l.missing(u); {
			case u.state == Inactive && !u.alive && missing == "":
				l.start(u)
				started = append(started, u)
				changed = true
			case u.alive && u.state != Stopping && missing != "":
				l.stop(u, fmt.Sprintf("requirement '%s' is down", missing), Inactive)
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
	return started
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

// unitOf returns the running component whose session pid belongs to, if any.
func (l *loop) unitOf(pid int) *unit {
	sid, err := unix.Getsid(pid)
	if err != nil {
		return nil
	}
	return l.byPid[sid]
}
