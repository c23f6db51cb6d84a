package resolver

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"yakimg/yakiros/control"
)

// readinessCommand answers `readiness`: every service with a readiness
// method, in the reference's layout.
func (l *loop) readinessCommand() control.Response {
	now := time.Now()
	d := control.ReadinessData{Components: []control.ReadinessStatus{}}
	var b strings.Builder
	b.WriteString("Readiness Status:\n")
	for _, u := range l.units {
		if !u.waitsForReadiness() {
			continue
		}
		rs := control.ReadinessStatus{
			Name:      u.Name,
			Method:    string(u.Readiness.Method),
			TimeoutMS: u.readinessTimeout().Milliseconds(),
			State:     u.state.String(),
			Status:    u.status,
			Reason:    u.reason,
		}
		var tag string
		switch u.state {
		case ReadyWait:
			waited := now.Sub(u.since)
			rs.WaitingMS = waited.Milliseconds()
			tag = fmt.Sprintf("WAITING %ds", int64(waited/time.Second))
			d.Waiting++
		case Active:
			tag = "READY"
			d.Ready++
		case Failed:
			tag = "FAILED/TIMEOUT"
			d.Failed++
		case Inactive:
			tag = "INACTIVE"
		case Starting:
			tag = "STARTING"
		default:
			tag = "OTHER"
		}
		d.Components = append(d.Components, rs)
		fmt.Fprintf(&b, "  %s: method=%s, timeout=%ss [%s]\n", u.Name, rs.Method,
			strconv.FormatFloat(u.readinessTimeout().Seconds(), 'f', -1, 64), tag)
	}
	fmt.Fprintf(&b, "\nSummary: %d ready, %d waiting, %d failed/timeout\n", d.Ready, d.Waiting, d.Failed)
	return control.OK(b.String(), d)
}

// checkReadiness answers `check-readiness [component]`: it has the
// readiness manager probe the named component, or every waiting one, now
// (a file is looked for again, a command runs without waiting for its
// interval; a notify service has nothing to probe). The outcome arrives
// as usual.
func (l *loop) checkReadiness(args []string) control.Response {
	if len(args) > 1 {
		return control.Fail(fmt.Sprintf("usage: check-readiness [component] (got %q)", strings.Join(args, " ")))
	}
	if l.ready == nil {
		return control.Fail(fmt.Sprintf("readiness unavailable: %v", l.readyErr))
	}
	d := control.CheckReadinessData{Checked: []string{}}
	if len(args) == 1 {
		u := l.byName[args[0]]
		switch {
		case u == nil:
			return control.Fail(fmt.Sprintf("component '%s' not found", args[0]))
		case !u.waitsForReadiness():
			return control.Fail(fmt.Sprintf("component '%s' has no readiness method", u.Name))
		case u.state != ReadyWait:
			return control.Fail(fmt.Sprintf("component '%s' is not waiting for readiness (state %s)", u.Name, u.state))
		}
		l.ready.Check(u.Name)
		d.Checked = append(d.Checked, u.Name)
		return control.OK(fmt.Sprintf("Readiness check triggered for component '%s'\n", u.Name), d)
	}
	for _, u := range l.units {
		if u.state == ReadyWait && l.ready.Check(u.Name) {
			d.Checked = append(d.Checked, u.Name)
		}
	}
	return control.OK(fmt.Sprintf("Readiness checks triggered for %d components\n", len(d.Checked)), d)
}
