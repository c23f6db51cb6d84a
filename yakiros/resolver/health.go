package resolver

import (
	"fmt"
	"strconv"
	"time"

	"yakimg/yakiros/capability"
	"yakimg/yakiros/config"
	"yakimg/yakiros/control"
	"yakimg/yakiros/health"
	"yakimg/yakiros/supervise"
)

// Health checks (docs/HEALTH.md). The health manager (l.checks) runs the
// checks of ACTIVE and DEGRADED services off the loop; their results come
// back as events, and the counting (health.Counter) happens here, on the
// loop, so a result and the state change it causes are one step:
//
//	ACTIVE   --fail_threshold consecutive failures-->  DEGRADED (capabilities stay up)
//	DEGRADED --one pass----------------------------->  ACTIVE
//	ACTIVE or DEGRADED --restart_threshold consecutive failures--> stopped,
//	         then FAILED and restarted by the restart policy

// healthState is what the loop knows of the health of a unit's process.
type healthState struct {
	counter health.Counter
	last    health.Result // the latest result; zero End when there is none
}

// checksHealth reports whether u declares a health check.
func (u *unit) checksHealth() bool {
	return u.Health.Method != "" && u.Health.Method != config.HealthNone
}

// watchHealth starts checking the process of u, which just became ACTIVE,
// with a fresh count.
func (l *loop) watchHealth(u *unit) {
	if !u.checksHealth() || l.checks == nil {
		return
	}
	u.health = healthState{counter: health.NewCounter(u.Health)}
	if err := l.checks.Watch(u.Name, u.pid, u.Health); err != nil {
		l.log.Errorf("component '%s': %v", u.Name, err)
	}
}

// rewatchHealth moves the checks of u to its new process after an upgrade
// by fd passing, keeping the count: the capabilities never dropped, and a
// degraded component recovers at its next pass as before.
func (l *loop) rewatchHealth(u *unit) {
	if !u.checksHealth() || l.checks == nil {
		return
	}
	if err := l.checks.Watch(u.Name, u.pid, u.Health); err != nil {
		l.log.Errorf("component '%s': %v", u.Name, err)
	}
}

// cancelHealth ends the checks of u's process: it has ended or is being
// stopped.
func (l *loop) cancelHealth(u *unit) {
	if u.checksHealth() && l.checks != nil {
		l.checks.Cancel(u.Name)
	}
}

// checkExited hands e to the health manager, which claims the exits of its
// command checks.
func (l *loop) checkExited(e supervise.Exit) bool {
	return l.checks != nil && l.checks.Exited(e)
}

// healthReport passes a HEALTH= or WATCHDOG= line from u's current process
// on to the health manager, if u's health is service-reported.
func (l *loop) healthReport(u *unit, line string) {
	if u.Health.Method == config.HealthNotify && l.checks != nil {
		l.checks.Report(u.Name, u.pid, line)
	}
}

// onHealth counts a check result of a unit's current process, while it is
// ACTIVE or DEGRADED, and applies what it changes.
func (l *loop) onHealth(r health.Result) {
	u := l.byName[r.Name]
	if u == nil || !u.alive || u.pid != r.Pid || (u.state != Active && u.state != Degraded) {
		return
	}
	h := &u.health
	h.last = r
	change := h.counter.Record(r.OK)
	n := h.counter.Failures()
	switch change {
	case health.Degrade:
		u.state = Degraded
		l.log.Warnf("component '%s' is DEGRADED: %d consecutive health checks failed (last: %s)", u.Name, n, r.Reason)
	case health.Recover:
		u.state = Active
		l.log.Infof("component '%s' recovered from DEGRADED: health check passed", u.Name)
	case health.Restart:
		why := fmt.Sprintf("%d consecutive health checks failed (last: %s)", n, r.Reason)
		l.log.Errorf("component '%s': %s", u.Name, why)
		l.stop(u, why, Failed)
	default:
		if n == 1 {
			l.log.Warnf("component '%s': health check failed: %s", u.Name, r.Reason)
		}
	}
}

// healthEnv is what the process of u needs in its environment for its
// health: a service reporting its own health learns the interval from
// WATCHDOG_USEC, as sd_watchdog_enabled(3) reads it, and should report at
// least that often.
func healthEnv(u *unit) []string {
	if u.Health.Method != config.HealthNotify {
		return nil
	}
	return []string{"WATCHDOG_USEC=" + strconv.FormatInt(u.Health.Interval.Microseconds(), 10)}
}

// healthColumns renders status's HEALTH and LAST CHECK of u: "-" without a
// health check; UNKNOWN before the first result; OK, or FAIL(n) after n
// consecutive failures; and how long ago the latest check ended.
func healthColumns(u *unit, now time.Time) (string, string) {
	if !u.checksHealth() {
		return "-", "-"
	}
	h := u.health
	switch {
	case h.last.End.IsZero():
		return "UNKNOWN", "-"
	case h.counter.Failures() > 0:
		return fmt.Sprintf("FAIL(%d)", h.counter.Failures()), formatUptime(now.Sub(h.last.End)) + " ago"
	default:
		return "OK", formatUptime(now.Sub(h.last.End)) + " ago"
	}
}

// fillHealth sets the health fields of u's status.
func fillHealth(cs *control.ComponentStatus, u *unit, now time.Time) {
	cs.LastCheckMSAgo = -1
	if !u.checksHealth() {
		return
	}
	h := u.health
	cs.Health = "unknown"
	cs.HealthChecks = h.counter.Checks()
	cs.HealthFailures = h.counter.Failures()
	if h.last.End.IsZero() {
		return
	}
	cs.Health, cs.HealthReason = "ok", h.last.Reason
	if h.counter.Failures() > 0 {
		cs.Health = "failing"
	}
	cs.LastCheckMSAgo = now.Sub(h.last.End).Milliseconds()
}

// capStatus is how caps shows c: DEGRADED while it is up and every one of
// its providers is DEGRADED (a degraded capability still counts as up for
// the components requiring it).
func (l *loop) capStatus(c capability.Capability) string {
	if c.Status != capability.Up {
		return string(c.Status)
	}
	for _, p := range c.Providers {
		if u := l.byName[p]; u == nil || u.state != Degraded {
			return string(c.Status)
		}
	}
	return "DEGRADED"
}
