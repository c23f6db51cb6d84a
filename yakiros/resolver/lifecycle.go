package resolver

import (
	"errors"
	"fmt"
	"slices"
	"syscall"
	"time"

	"yakimg/yakiros/config"
	"yakimg/yakiros/handoff"
	"yakimg/yakiros/isolate"
	"yakimg/yakiros/readiness"
	"yakimg/yakiros/supervise"
)

// stopGrace is how long a process has between SIGTERM and SIGKILL.
const stopGrace = 3 * time.Second

// Restart back-off: the n-th start within the restart window that failed
// is followed by a pause of restartDelay × 2^(n-1), at most maxRestartDelay.
const (
	restartDelay    = time.Second
	maxRestartDelay = 30 * time.Second
)

// defaultReadinessTimeout applies when a declaration gives none.
const defaultReadinessTimeout = 30 * time.Second

// unit is a component and what the loop knows about it at run time.
type unit struct {
	config.Component
	state  State
	reason string // why it is FAILED, STOPPING or INACTIVE again
	pid    int    // latest process; it is running while alive is true
	alive  bool   // forked and not yet reaped
	since  time.Time

	starts    int              // every start, for status's RESTARTS
	recent    []time.Time      // starts counted against Restart.Max; reset by resolve and reload
	restartAt time.Time        // FAILED: when the back-off ends
	killAt    time.Time        // STOPPING: when SIGTERM has had its grace
	status    string           // the latest STATUS= of a notify service's process
	ctl       *handoff.Control // fd-passing services: PID 1's end of the upgrade socket
	health    healthState      // health checks of the latest process (health.go)
	group     *isolate.Group   // the latest process's cgroup, until it is removed
	oomBase   int64            // the group's oom_kill when the process started
	oomRun    int64            // OOM kills the watcher reported for the current group
	oomKills  int64            // OOM kills in its groups since the first start

	// What happens once a STOPPING process is reaped.
	then    State             // Inactive, or Failed (with reason)
	next    *config.Component // a reload changed the declaration: switch to it
	removed bool              // a reload removed the declaration: forget the unit
}

func (u *unit) readinessTimeout() time.Duration {
	if u.Readiness.Timeout > 0 {
		return u.Readiness.Timeout
	}
	return defaultReadinessTimeout
}

// waitsForReadiness reports whether u's service reports readiness, rather
// than being ready once its binary runs.
func (u *unit) waitsForReadiness() bool {
	m := u.Readiness.Method
	return u.Type == config.Service && m != "" && m != config.ReadyNone
}

// start runs u's process. A process is only ever started for a unit with
// none alive: the previous one has been reaped.
func (l *loop) start(u *unit) {
	now := time.Now()
	u.starts++
	u.recent = append(u.recent, now)
	spec := supervise.Spec{Name: u.Name, Binary: u.Binary, Args: u.Args}
	if u.waitsForReadiness() {
		if l.ready == nil {
			l.failed(u, fmt.Sprintf("readiness %s unavailable: %v", u.Readiness.Method, l.readyErr))
			return
		}
		if err := readiness.Prepare(u.Readiness); err != nil {
			l.log.Errorf("component '%s' failed to start: %v", u.Name, err)
			l.failed(u, err.Error())
			return
		}
		spec.Env = l.ready.Env(u.Readiness)
	}
	spec.Env = append(spec.Env, healthEnv(u)...)
	started, err := l.startWithUpgradeSocket(u, &spec)
	if err != nil {
		l.log.Errorf("component '%s' failed to start: %v", u.Name, err)
		l.failed(u, err.Error())
		return
	}
	if isolate.Wanted(u.Component) {
		if err := l.isolateSpec(u, &spec); err != nil {
			started(false)
			l.log.Errorf("component '%s' failed to start: %v", u.Name, err)
			l.failed(u, err.Error())
			return
		}
	}
	pid, err := l.spawn(spec)
	started(err == nil)
	if err != nil {
		l.releaseGroup(u)
		l.log.Errorf("component '%s' failed to start: %v", u.Name, err)
		l.failed(u, err.Error())
		return
	}
	u.pid, u.alive, u.since, u.reason, u.status = pid, true, now, "", ""
	u.health = healthState{}
	l.byPid[pid] = u
	l.log.Infof("starting component '%s' (pid %d)", u.Name, pid)
	l.running(u)
}

// running places a unit whose binary now runs: a oneshot is STARTING until
// it exits; a service is ACTIVE at once, or, with a readiness method, in
// READY_WAIT until the readiness manager reports it ready, failed or timed
// out (the manager keeps the one readiness deadline).
func (l *loop) running(u *unit) {
	switch {
	case u.Type == config.Oneshot:
		u.state = Starting
	case !u.waitsForReadiness():
		l.activate(u)
	default:
		u.state = ReadyWait
		cfg := u.Readiness
		cfg.Timeout = u.readinessTimeout()
		l.ready.Watch(u.Name, u.pid, cfg)
		l.log.Infof("component '%s' waiting for readiness (%s, timeout %v)", u.Name, u.Readiness.Method, cfg.Timeout)
	}
}

func (l *loop) activate(u *unit) {
	u.state = Active
	l.log.Infof("component '%s' is active (pid %d)", u.Name, u.pid)
	l.provide(u)
	l.watchHealth(u)
}

// onReadiness applies news from the readiness manager if it is about u's
// current process: a stale pid (a process since stopped or replaced) is
// ignored. A STATUS= line is kept for `readiness`; an outcome counts only
// while u waits.
func (l *loop) onReadiness(ev readiness.Event) {
	u := l.byName[ev.Name]
	if u == nil || !u.alive || u.pid != ev.Pid {
		return
	}
	switch {
	case ev.Health != "":
		l.healthReport(u, ev.Health)
	case !ev.Ready && ev.Err == nil: // a STATUS= line, possibly empty
		u.status = ev.Status
	case l.upgrades[u.Name] != nil && l.upgrades[u.Name].awaitingReady:
		l.upgradeReady(l.upgrades[u.Name], ev)
	case u.state != ReadyWait:
	case ev.Ready:
		l.log.Infof("component '%s' is ready (waited %v)", u.Name, time.Since(u.since).Round(time.Millisecond))
		l.activate(u)
	case errors.Is(ev.Err, readiness.ErrTimeout):
		l.log.Errorf("component '%s': %v", u.Name, ev.Err)
		l.stop(u, ev.Err.Error(), Failed)
	default:
		l.log.Errorf("component '%s': readiness check failed: %v", u.Name, ev.Err)
		l.stop(u, fmt.Sprintf("readiness check failed: %v", ev.Err), Failed)
	}
}

// exited handles a reaped process: a component's, a readiness check's
// (handed to the readiness manager) or an orphan's.
func (l *loop) exited(e supervise.Exit) {
	u := l.byPid[e.Pid]
	if u == nil {
		if l.exitedOutsideUnits(e) {
			return
		}
		if !l.checkExited(e) && !l.exitedCriu(e) && (l.ready == nil || !l.ready.Exited(e)) {
			l.log.Infof("reaped orphan pid %d (%v)", e.Pid, e)
		}
		return
	}
	if up := l.upgrades[u.Name]; up != nil && up.inFlight && e.Pid == up.data.OldPid {
		// An old instance that handed over exits by itself, possibly
		// before PID 1 has read the outcome: wait for it (onHandoff).
		delete(l.byPid, e.Pid)
		up.oldExit = &e
		return
	}
	delete(l.byPid, e.Pid)
	l.cancelReadiness(u)
	l.cancelHealth(u)
	u.closeUpgradeSocket()
	u.alive, u.killAt = false, time.Time{}
	reason := e.String()
	if n := l.releaseGroup(u); n > 0 {
		reason = oomReason(u, n, e)
	} else if u.Isolation.Namespaces != nil && e.Status.Exited() && e.Status.ExitStatus() == isolate.HelperFailed {
		reason += " (isolation setup failed; see its log)"
	}
	switch {
	case u.state == Stopping:
		l.log.Infof("component '%s' stopped (%v)", u.Name, e)
		switch {
		case u.removed:
			l.forget(u)
		case u.next != nil:
			l.replace(u, *u.next)
		case u.then == Failed:
			l.failed(u, u.reason)
		default:
			u.state = Inactive
		}
	case u.Type == config.Oneshot && e.Success():
		u.state = Done
		l.log.Infof("oneshot '%s' completed", u.Name)
		l.provide(u)
	default:
		l.log.Errorf("component '%s' %s", u.Name, reason)
		l.failed(u, reason)
	}
}

// failed marks u FAILED and applies its restart policy: another start after
// a back-off while it has had fewer than Restart.Max starts within
// Restart.Window (a window of 0 counts every start since the last reset),
// and none at all with Restart.Max 0. Past the limit it stays FAILED until
// `graphctl resolve` or a reload resets the count.
func (l *loop) failed(u *unit, reason string) {
	l.withdraw(u)
	u.state, u.reason = Failed, reason
	if l.halt != nil || u.Restart.Max <= 0 {
		return
	}
	now := time.Now()
	if w := u.Restart.Window; w > 0 {
		u.recent = slices.DeleteFunc(u.recent, func(t time.Time) bool { return !t.After(now.Add(-w)) })
	}
	n := len(u.recent)
	if n >= u.Restart.Max {
		u.reason = fmt.Sprintf("restarting too fast: %d starts", n)
		if u.Restart.Window > 0 {
			u.reason += fmt.Sprintf(" in %v", u.Restart.Window)
		}
		l.log.Errorf("component '%s' %s (last: %s); not restarting until 'graphctl resolve' or a reload", u.Name, u.reason, reason)
		return
	}
	delay := maxRestartDelay
	if n <= 6 {
		delay = min(restartDelay<<max(n-1, 0), maxRestartDelay)
	}
	u.restartAt = now.Add(delay)
	l.log.Infof("component '%s' restarts in %v (%d of at most %d starts)", u.Name, delay, n, u.Restart.Max)
}

// resetRestarts lets a FAILED unit start again at once, its count of
// recent starts cleared.
func (l *loop) resetRestarts(u *unit) {
	u.recent, u.restartAt = nil, time.Time{}
	if u.state == Failed {
		u.state = Inactive
	}
}

// stop withdraws u's capabilities and asks its process to end; kill sends
// SIGKILL if it has not ended after stopGrace. Once the process is reaped
// the unit becomes then (see exited).
func (l *loop) stop(u *unit, why string, then State) {
	l.withdraw(u)
	l.cancelReadiness(u)
	l.cancelHealth(u)
	u.state, u.reason, u.then = Stopping, why, then
	u.killAt = time.Now().Add(stopGrace)
	l.log.Infof("stopping component '%s' (pid %d): %s", u.Name, u.pid, why)
	if err := supervise.Signal(u.pid, syscall.SIGTERM); err != nil {
		l.log.Warnf("component '%s': %v", u.Name, err)
	}
}

// cancelReadiness ends the readiness watch of u's process, if any: it has
// ended or is being stopped.
func (l *loop) cancelReadiness(u *unit) {
	if l.ready != nil && u.waitsForReadiness() {
		l.ready.Cancel(u.Name)
	}
}

func (l *loop) kill(u *unit) {
	u.killAt = time.Time{}
	l.log.Warnf("component '%s' (pid %d) ignored SIGTERM for %v; sending SIGKILL", u.Name, u.pid, stopGrace)
	if err := supervise.Signal(u.pid, syscall.SIGKILL); err != nil {
		l.log.Warnf("component '%s': %v", u.Name, err)
	}
}

// hasRunningDependent reports whether a running component other than u
// requires something u provides.
func (l *loop) hasRunningDependent(u *unit) bool {
	for _, c := range u.Provides {
		for _, v := range l.dependents[c] {
			if v != u && v.alive && slices.Contains(v.Requires, c) {
				return true
			}
		}
	}
	return false
}
