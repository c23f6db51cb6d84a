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
	"yakimg/yakiros/health"
	"yakimg/yakiros/isolate"
	"yakimg/yakiros/machine"
	"yakimg/yakiros/readiness"
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

	// ready watches READY_WAIT units (nil if it could not be set up: then
	// a unit with a readiness method fails to start, saying why).
	ready    *readiness.Manager
	readyErr error // why ready is nil
	// checks runs the health checks (nil: none run).
	checks *health.Manager
	// spawn starts a unit's process: supervise.Start, faked in benchmarks.
	spawn func(supervise.Spec) (int, error)

	// dependents maps a capability to the units requiring it (by current
	// or pending declaration), so that a capability coming up or going
	// down re-examines just those. Rebuilt whenever declarations change;
	// it may name units that are gone since, which users skip.
	dependents map[string][]*unit
	// queue holds the units resolve still has to examine.
	queue []*unit
	// cycles maps the members of every dependency cycle of the latest
	// declarations to the cycle's message; they stay in CYCLE.
	cycles map[string]string

	// Upgrades in progress by component, the new instances still taking
	// over by pid, old instances that handed over and are expected to exit,
	// and the outcomes of handoffs (from Upgrade.Wait goroutines).
	upgrades    map[string]*upgrade
	candidates  map[int]*upgrade
	retiring    map[int]retiree
	handoffNews chan handoffOutcome

	// iso is the cgroup hierarchy and namespace helper (isolation.go).
	iso isolation
	// ckpt holds CRIU checkpoints and restores in progress (checkpoint.go).
	ckpt *checkpointer
	// kexec is a live kernel upgrade in progress, afterKexec what the boot
	// after one restores, kexecNews their goroutines' outcomes, run on the
	// loop (kexecupgrade.go, kexecboot.go).
	kexec      *kexecRun
	afterKexec *afterKexec
	kexecNews  chan func()

	// dirChanged is signalled by the config directory's watcher.
	dirChanged chan struct{}
	reloadAt   time.Time     // when a debounced reload is due
	quit       chan struct{} // closed when run returns, for senders
	halt       *shutdown     // non-nil once shutdown has begun
}

// newLoop sets up the loop over comps. ready may be nil, with readyErr
// saying why.
func newLoop(log *logger, pid1 bool, configDir string, logs *supervise.Logs, ready *readiness.Manager, readyErr error,
	comps []config.Component, rejected []error) *loop {
	l := &loop{
		log:        log,
		pid1:       pid1,
		configDir:  configDir,
		logs:       logs,
		byName:     map[string]*unit{},
		byPid:      map[int]*unit{},
		caps:       capability.NewRegistry(),
		rejected:   rejected,
		ready:      ready,
		readyErr:   readyErr,
		dirChanged: make(chan struct{}, 1),
		quit:       make(chan struct{}),

		upgrades:    map[string]*upgrade{},
		candidates:  map[int]*upgrade{},
		retiring:    map[int]retiree{},
		handoffNews: make(chan handoffOutcome),
		iso:         isolation{top: isolate.DefaultMount},
		ckpt:        newCheckpointer(),
		kexecNews:   make(chan func()),
	}
	l.spawn = func(spec supervise.Spec) (int, error) { return supervise.Start(spec, l.logs) }
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
	l.declarationsChanged()
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
	var readyNews <-chan struct{} // nil without a readiness manager: never ready
	if l.ready != nil {
		readyNews = l.ready.Pending()
	}
	var healthNews <-chan struct{}
	if l.checks != nil {
		healthNews = l.checks.Pending()
	}
	l.log.Infof("performing initial graph resolution")
	l.resolve()
	l.log.Infof("entering main event loop")
	for !l.finished() {
		l.arm(timer)
		var groupNews <-chan struct{} // nil until an isolated component starts
		if l.iso.watcher != nil {
			groupNews = l.iso.watcher.Pending()
		}
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
		case <-readyNews:
			for _, ev := range l.ready.Take() {
				l.onReadiness(ev)
			}
		case <-healthNews:
			for _, r := range l.checks.Take() {
				l.onHealth(r)
			}
		case <-groupNews:
			l.onGroupEvents(l.iso.watcher.Take())
		case o := <-l.handoffNews:
			l.onHandoff(o)
		case o := <-l.ckpt.news:
			l.onCheckpoint(o)
		case f := <-l.kexecNews:
			f()
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
		l.checkUpgrades(time.Now())
		l.checkRestores()
	}
	return l.halt.action
}

// arm sets timer to the earliest deadline: a kill after the grace period,
// the end of a restart back-off, a debounced reload or a shutdown phase.
// (Readiness timeouts are the readiness manager's: they arrive as events.)
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
	}
	consider(l.reloadAt)
	l.upgradeDeadlines(consider)
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
	}
	l.killRetirees(now)
	if !l.reloadAt.IsZero() && !now.Before(l.reloadAt) {
		l.reloadAt = time.Time{}
		l.reload("change in " + l.configDir)
	}
}

// resolve starts every inactive component whose requirements are all up and
// stops every running one that lost a requirement, until nothing changes,
// and returns the components it started. Once shutdown has begun it
// advances shutdown instead.
//
// It examines every unit once, and then again only the units requiring a
// capability that came up or went down meanwhile (provide and withdraw
// queue them): a pass costs time linear in the units and their
// requirements, however long the chains, where passes repeated until
// nothing changes would cost one pass per link of a chain declared in
// reverse order.
func (l *loop) resolve() (started []*unit) {
	if l.halt != nil {
		l.queue = l.queue[:0]
		l.advanceShutdown()
		return nil
	}
	stopped := 0
	l.queue = append(l.queue[:0], l.units...)
	for i := 0; i < len(l.queue); i++ {
		u := l.queue[i]
		if l.byName[u.Name] != u {
			continue // forgotten since the index was built
		}
		switch {
		case u.state != Inactive || u.alive:
			if missing := l.missing(u); u.alive && u.state != Stopping && missing != "" {
				l.stop(u, fmt.Sprintf("requirement '%s' is down", missing), Inactive)
				stopped++
			}
		case l.cycles[u.Name] != "":
			u.state, u.reason = Cycle, l.cycles[u.Name]
		case l.missing(u) == "":
			l.startOrRestore(u)
			started = append(started, u)
		}
	}
	clear(l.queue) // keep no units alive through the spare capacity
	l.queue = l.queue[:0]
	if len(started) > 0 || stopped > 0 {
		up := 0
		for _, c := range l.caps.List() {
			if c.Status == capability.Up {
				up++
			}
		}
		l.log.Infof("graph stable: %d started, %d stopped (%d components, %d capabilities up)", len(started), stopped, len(l.units), up)
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

// provide registers u's capabilities and queues the dependents of those
// that came up for resolve.
func (l *loop) provide(u *unit) {
	for _, c := range u.Provides {
		if l.caps.Provide(c, u.Name) {
			l.log.Infof("capability UP: %s (provided by %s)", c, u.Name)
			l.queue = append(l.queue, l.dependents[c]...)
		}
	}
}

// withdraw removes u's capabilities and queues the dependents of those
// that went down for resolve.
func (l *loop) withdraw(u *unit) {
	for _, c := range u.Provides {
		if l.caps.Withdraw(c, u.Name) {
			l.log.Infof("capability DOWN: %s", c)
			l.queue = append(l.queue, l.dependents[c]...)
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
