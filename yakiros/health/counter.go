package health

import "yakimg/yakiros/config"

// Change is what one check result does to a component.
type Change int

// Changes, as Counter.Record reports them.
const (
	Steady  Change = iota // nothing changes
	Degrade               // the fail threshold is reached: ACTIVE → DEGRADED
	Recover               // a pass while degraded: DEGRADED → ACTIVE
	Restart               // the restart threshold is reached: FAILED, then the restart policy
)

func (c Change) String() string {
	return [...]string{"steady", "degrade", "recover", "restart"}[c]
}

// Counter applies the counting rules to the check results of one process
// (a new process starts a new Counter):
//
//   - a pass resets the count of consecutive failures; if the process was
//     degraded, it recovers;
//   - the RestartThreshold-th consecutive failure restarts it, degraded or
//     not (so with RestartThreshold <= FailThreshold it never degrades);
//   - otherwise the FailThreshold-th consecutive failure degrades it.
//
// Each threshold acts when the count reaches it, once; the count goes on
// while the component is being restarted, but Restart is not repeated.
type Counter struct {
	failThreshold, restartThreshold int
	checks, failures                int
	degraded                        bool
}

// NewCounter returns a Counter with h's thresholds.
func NewCounter(h config.Health) Counter {
	return Counter{failThreshold: h.FailThreshold, restartThreshold: h.RestartThreshold}
}

// Record counts one result and says what it changes.
func (c *Counter) Record(ok bool) Change {
	c.checks++
	if ok {
		c.failures = 0
		if c.degraded {
			c.degraded = false
			return Recover
		}
		return Steady
	}
	c.failures++
	switch {
	case c.failures == c.restartThreshold:
		return Restart
	case c.failures == c.failThreshold && c.failures < c.restartThreshold:
		c.degraded = true
		return Degrade
	}
	return Steady
}

// Checks is the number of results recorded.
func (c Counter) Checks() int { return c.checks }

// Failures is the number of consecutive failures up to the latest result.
func (c Counter) Failures() int { return c.failures }

// Degraded reports whether the process is degraded: it reached the fail
// threshold and has not passed a check since.
func (c Counter) Degraded() bool { return c.degraded }
