package resolver

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"time"

	"yakimg/yakiros/config"
	"yakimg/yakiros/control"
	"yakimg/yakiros/handoff"
	"yakimg/yakiros/isolate"
	"yakimg/yakiros/readiness"
	"yakimg/yakiros/supervise"
)

// Upgrades run new code for a running service (`graphctl upgrade`). The
// levels are tried in order, each as the declaration allows, and every one
// is reported with its outcome and reason: CRIU (a checkpointable service
// upgraded without --binary: dumped and restored, its memory kept;
// upgrade_criu.go), fd passing (the component declares handoff =
// "fd-passing": the old instance hands its sockets, files and state to the
// new one, the capability never drops), else a restart. A new instance that
// fails to start or to take over leaves the old one serving; the loop never
// waits for any of it.

const (
	// maxUpgradeTimeout bounds --timeout: graphctl waits for the answer.
	maxUpgradeTimeout = 60 * time.Second
	// retireGrace is how long an old instance has to exit by itself after
	// it handed over, before it is killed.
	retireGrace = 5 * time.Second
)

// upgrade is one `graphctl upgrade` in progress.
type upgrade struct {
	call    *control.Call
	u       *unit
	binary  string
	newCode bool // --binary was given
	timeout time.Duration
	start   time.Time
	data    control.UpgradeData

	// fd passing
	attempt time.Time        // when the current attempt began
	newCtl  *handoff.Control // the new instance's upgrade socket
	newExit *supervise.Exit  // the new instance ended, by itself or killed
	killed  bool             // PID 1 killed the new instance
	// inFlight: the handoff (or CRIU) runs; an exit of the old instance
	// meanwhile is kept in oldExit until the outcome says whether it
	// handed over (or was dumped).
	inFlight bool
	oldExit  *supervise.Exit
	failure  *handoffFailure // the attempt failed; waiting for the new instance's exit
	// awaitingReady: the new instance took over and its readiness is being
	// confirmed (its component has a readiness method).
	awaitingReady bool
	// restart: the unit counts as upgraded once it is ACTIVE again with a
	// process other than OldPid, or as failed once it is FAILED or the
	// deadline passes.
	restartBy time.Time
	// dumped: CRIU dumped and ended the old instance; the restore begins
	// once its exit is in oldExit.
	dumped *ckptOutcome
}

// handoffOutcome is what Upgrade.Wait said, delivered to the loop.
type handoffOutcome struct {
	up     *upgrade
	result handoff.Result
	err    error
}

// upgradeCommand starts an upgrade; the reply comes when it has ended.
func (l *loop) upgradeCommand(c *control.Call) {
	up, err := l.parseUpgrade(c)
	if err != nil {
		c.Reply(control.Fail(err.Error()))
		return
	}
	l.upgrades[up.u.Name] = up
	l.log.Infof("upgrading component '%s' (pid %d) to %s", up.u.Name, up.u.pid, up.binary)
	l.upgradeByCRIU(up)
}

// handOverOrRestart goes on with fd passing where the declaration allows
// it, else with a restart.
func (l *loop) handOverOrRestart(up *upgrade) {
	switch {
	case up.u.Handoff != config.HandoffFDPassing:
		up.skip("fd-passing", fmt.Sprintf("handoff is %q", cmp.Or(up.u.Handoff, config.HandoffNone)))
		l.restartFor(up)
	case up.oldExit != nil:
		up.skip("fd-passing", "the old instance is gone")
		l.restartFor(up)
	case up.u.ctl == nil:
		up.skip("fd-passing", "the running instance was started without an upgrade socket")
		l.restartFor(up)
	default:
		l.handOver(up)
	}
}

// parseUpgrade reads `upgrade <component> [--binary PATH] [--timeout D]`
// and checks that the component can be upgraded now.
func (l *loop) parseUpgrade(c *control.Call) (*upgrade, error) {
	fs := flag.NewFlagSet("upgrade", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	binary := fs.String("binary", "", "")
	timeout := fs.Duration("timeout", handoff.DefaultTimeout, "")
	args := c.Request.Args
	var name string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		name, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return nil, fmt.Errorf("upgrade: %v; usage: upgrade <component> [--binary PATH] [--timeout D]", err)
	}
	if name == "" || fs.NArg() > 0 {
		return nil, errors.New("usage: upgrade <component> [--binary PATH] [--timeout D]")
	}
	if *timeout <= 0 || *timeout > maxUpgradeTimeout {
		return nil, fmt.Errorf("upgrade: --timeout %v is not in (0, %v]", *timeout, maxUpgradeTimeout)
	}
	u := l.byName[name]
	switch {
	case u == nil:
		return nil, fmt.Errorf("upgrade: no component '%s'", name)
	case u.Type != config.Service:
		return nil, fmt.Errorf("upgrade: '%s' is a %s; only services are upgraded", name, u.Type)
	case !u.alive || (u.state != Active && u.state != Degraded):
		return nil, fmt.Errorf("upgrade: '%s' is %s; only a running ACTIVE or DEGRADED service is upgraded", name, u.state)
	case l.upgrades[name] != nil:
		return nil, fmt.Errorf("upgrade: '%s' is being upgraded already", name)
	case l.ckpt.ops[name] != nil:
		return nil, fmt.Errorf("upgrade: %s", l.ckptBusy(u))
	case l.halt != nil:
		return nil, errors.New("upgrade: shutting down")
	}
	bin := u.Binary
	if *binary != "" {
		bin = *binary
	}
	// Check the binary before touching anything: a typo must not cost the
	// running instance, whatever the method.
	if fi, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("upgrade: %w", err)
	} else if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		return nil, fmt.Errorf("upgrade: %s is not an executable file", bin)
	}
	up := &upgrade{call: c, u: u, binary: bin, newCode: *binary != "", timeout: *timeout, start: time.Now()}
	up.data = control.UpgradeData{Component: name, Binary: bin, OldPid: u.pid}
	return up, nil
}

func (up *upgrade) skip(method, why string) {
	up.data.Attempts = append(up.data.Attempts, control.UpgradeAttempt{Method: method, Outcome: "skipped", Detail: why})
}

func (up *upgrade) record(method, outcome, detail string, fds int, state uint64) {
	up.data.Attempts = append(up.data.Attempts, control.UpgradeAttempt{
		Method: method, Outcome: outcome, Detail: detail, FDs: fds, StateBytes: state,
		DurationMS: float64(time.Since(up.attempt).Microseconds()) / 1000,
	})
}

// handOver starts the fd-passing attempt: the old instance is asked over
// its upgrade socket, the new one started with the channel's other end.
// Upgrade.Wait runs on a goroutine of its own and reports to the loop.
func (l *loop) handOver(up *upgrade) {
	u := up.u
	up.attempt = time.Now()
	hu, err := u.ctl.Upgrade(up.timeout)
	if err != nil {
		up.record("fd-passing", "failed", err.Error(), 0, 0)
		l.restartFor(up)
		return
	}
	newCtl, sock, err := handoff.NewControl()
	if err != nil {
		hu.New.Close()
		go hu.Wait(context.Background()) // the old instance sees the channel close and resumes
		l.finishUpgrade(up, "fd-passing", err.Error())
		return
	}
	spec := supervise.Spec{
		Name: u.Name, Binary: up.binary, Args: u.Args,
		Env:        []string{handoff.EnvUpgradeFD + "=3", handoff.EnvHandoffFD + "=4"},
		ExtraFiles: []*os.File{sock, hu.New},
	}
	if u.waitsForReadiness() && l.ready != nil {
		spec.Env = append(spec.Env, l.ready.Env(u.Readiness)...)
	}
	spec.Env = append(spec.Env, healthEnv(u)...)
	if u.group != nil {
		// The new instance runs under the same limits and in namespaces
		// of the same kinds as the old one, in the same group.
		flags, err := isolate.CloneFlags(u.Isolation.Namespaces)
		if err == nil {
			err = l.wrapIsolated(u, &spec, u.group, flags)
		}
		if err != nil {
			sock.Close()
			newCtl.Close()
			go hu.Wait(context.Background())
			l.finishUpgrade(up, "fd-passing", "isolating the new instance: "+err.Error())
			return
		}
	}
	pid, err := l.spawn(spec)
	sock.Close()
	if err != nil {
		newCtl.Close()
		go hu.Wait(context.Background())
		l.finishUpgrade(up, "fd-passing", "the new instance did not start: "+err.Error())
		return
	}
	l.log.Infof("component '%s': new instance pid %d started for the handoff", u.Name, pid)
	up.newCtl, up.data.NewPid = newCtl, pid
	up.inFlight = true
	l.candidates[pid] = up
	go func() {
		res, err := hu.Wait(context.Background())
		select {
		case l.handoffNews <- handoffOutcome{up, res, err}:
		case <-l.quit:
		}
	}()
}

// onHandoff applies the outcome of an fd-passing attempt.
func (l *loop) onHandoff(o handoffOutcome) {
	up, u := o.up, o.up.u
	newPid := up.data.NewPid
	up.inFlight = false
	if o.err == nil && up.newExit != nil {
		o.err = fmt.Errorf("the new instance %v right after taking over", *up.newExit)
	}
	if o.err != nil {
		up.newCtl.Close()
		// The old instance died without handing over: now it counts as
		// the component's exit.
		l.releaseOldExit(up)
		var failed *handoff.FailedError
		// The old instance never answered: it does not speak the protocol,
		// and running the new code still needs a restart.
		restart := !errors.As(o.err, &failed) && errors.Is(o.err, handoff.ErrTimeout) && up.newExit == nil
		up.failure = &handoffFailure{detail: o.err.Error(), restart: restart}
		if up.newExit == nil {
			// Answer once it is reaped, so that the reply can say how a
			// new instance that died by itself ended.
			up.killed = true
			supervise.Signal(newPid, syscall.SIGKILL)
			return
		}
		l.failHandoff(up)
		return
	}
	delete(l.candidates, newPid)
	old := u.pid
	delete(l.byPid, old)
	if up.oldExit == nil {
		l.retiring[old] = retiree{name: u.Name, killAt: time.Now().Add(retireGrace)}
	} else {
		l.log.Infof("component '%s': old instance pid %d %v after handing over", u.Name, old, *up.oldExit)
	}
	u.closeUpgradeSocket()
	u.ctl = up.newCtl
	u.pid, u.since, u.status = newPid, time.Now(), ""
	u.starts++
	u.Binary = up.binary
	l.byPid[newPid] = u
	l.rewatchHealth(u)
	up.record("fd-passing", "ok", fmt.Sprintf("pid %d handed %d descriptors and %d bytes of state to pid %d", old, o.result.FDs, o.result.StateBytes, newPid),
		o.result.FDs, o.result.StateBytes)
	l.log.Infof("component '%s' upgraded by fd passing: pid %d → %d in %v", u.Name, old, newPid, o.result.Duration.Round(time.Millisecond))
	if !u.waitsForReadiness() || l.ready == nil {
		l.finishUpgrade(up, "", "")
		return
	}
	// The capability stays provided; the new instance's own report of
	// readiness (or its absence) ends the upgrade.
	cfg := u.Readiness
	cfg.Timeout = u.readinessTimeout()
	l.ready.Watch(u.Name, newPid, cfg)
	up.awaitingReady = true
}

// upgradeReady ends an fd-passing upgrade once the new instance has
// reported ready, or failed to. It serves on the adopted sockets already,
// and the old one has let go, so a failure here is the component's: it is
// stopped and restarted by its policy.
func (l *loop) upgradeReady(up *upgrade, ev readiness.Event) {
	u := up.u
	up.awaitingReady = false
	if ev.Ready {
		l.log.Infof("component '%s': new instance pid %d is ready", u.Name, u.pid)
		l.finishUpgrade(up, "", "")
		return
	}
	why := fmt.Sprintf("the new instance pid %d took over but its readiness failed: %v", u.pid, ev.Err)
	l.stop(u, why, Failed)
	l.finishUpgrade(up, "readiness", why)
}

// handoffFailure is a failed fd-passing attempt waiting for its new
// instance to be reaped.
type handoffFailure struct {
	detail  string
	restart bool // fall back to a restart
}

// failHandoff ends a failed fd-passing attempt once the new instance is
// gone: by a restart when the old instance never answered, else by
// replying that the old instance keeps serving.
func (l *loop) failHandoff(up *upgrade) {
	f := up.failure
	up.failure, up.data.NewPid = nil, 0
	if f.restart && up.u.alive {
		up.record("fd-passing", "failed", f.detail, 0, 0)
		l.restartFor(up)
		return
	}
	detail := f.detail
	if e := up.newExit; e != nil && !(up.killed && e.Status.Signaled() && e.Status.Signal() == syscall.SIGKILL) {
		detail = fmt.Sprintf("%s; the new instance %v", detail, *e)
	}
	l.finishUpgrade(up, "fd-passing", detail)
}

// restartFor upgrades by stopping the old instance and starting the new
// binary in its place: the capability drops meanwhile.
func (l *loop) restartFor(up *upgrade) {
	u := up.u
	up.attempt = time.Now()
	next := u.Component
	next.Binary = up.binary
	u.next = &next
	up.restartBy = time.Now().Add(stopGrace + up.timeout)
	if up.oldExit != nil {
		// CRIU ended the old instance already: its kept exit completes
		// the stop.
		l.withdraw(u)
		u.state, u.reason, u.then = Stopping, "upgrade to "+up.binary, Inactive
		l.releaseOldExit(up)
		return
	}
	l.stop(u, "upgrade to "+up.binary, Inactive)
}

// checkUpgrades begins the restore of every CRIU upgrade whose dumped old
// instance has been reaped, ends every upgrade whose new instance died
// while its readiness was being confirmed, and every restart-method upgrade
// whose unit is running again, has failed or ran out of time.
func (l *loop) checkUpgrades(now time.Time) {
	for _, up := range l.upgrades {
		u := up.u
		if l.restoreDumped(up) {
			continue
		}
		if up.awaitingReady && (!u.alive || u.pid != up.data.NewPid) {
			up.awaitingReady = false
			l.finishUpgrade(up, "readiness", fmt.Sprintf("the new instance pid %d took over, then ended before it was ready (%s)", up.data.NewPid, u.reason))
			continue
		}
		if up.restartBy.IsZero() {
			continue
		}
		switch {
		case u.alive && u.pid != up.data.OldPid && (u.state == Active || u.state == Degraded):
			up.data.NewPid = u.pid
			up.record("restart", "ok", fmt.Sprintf("pid %d stopped, pid %d %s", up.data.OldPid, u.pid, u.state), 0, 0)
			l.finishUpgrade(up, "", "")
		case u.state == Failed:
			l.finishUpgrade(up, "restart", "the new instance failed: "+u.reason)
		case !now.Before(up.restartBy):
			l.finishUpgrade(up, "restart", fmt.Sprintf("not running and ready within %v (state %s)", up.restartBy.Sub(up.start).Round(time.Millisecond), u.state))
		}
	}
}

// finishUpgrade replies to graphctl. With a method, the upgrade failed
// in that method for the reason given.
func (l *loop) finishUpgrade(up *upgrade, method, why string) {
	delete(l.upgrades, up.u.Name)
	if method != "" {
		up.record(method, "failed", why, 0, 0)
	}
	up.data.DurationMS = float64(time.Since(up.start).Microseconds()) / 1000
	var b strings.Builder
	for _, a := range up.data.Attempts {
		fmt.Fprintf(&b, "%-10s %-7s %s", a.Method, a.Outcome, a.Detail)
		if a.Outcome != "skipped" {
			fmt.Fprintf(&b, " (%.1f ms)", a.DurationMS)
		}
		b.WriteByte('\n')
	}
	if method != "" {
		serving := fmt.Sprintf("the old instance (pid %d) keeps serving", up.data.OldPid)
		if !up.u.alive || up.u.pid != up.data.OldPid {
			serving = fmt.Sprintf("'%s' is %s", up.u.Name, up.u.state)
		}
		l.log.Errorf("upgrade of component '%s' failed: %s; %s", up.u.Name, why, serving)
		up.call.Reply(control.FailWith(fmt.Sprintf("upgrade of '%s' failed: %s; %s", up.u.Name, why, serving), b.String(), up.data))
		return
	}
	fmt.Fprintf(&b, "Upgraded '%s' to %s: pid %d → %d in %.1f ms\n", up.u.Name, up.binary, up.data.OldPid, up.data.NewPid, up.data.DurationMS)
	up.call.Reply(control.OK(b.String(), up.data))
}

// retiree is an old instance that handed over and is expected to exit.
type retiree struct {
	name   string
	killAt time.Time
}

// exitedOutsideUnits handles the exit of a process that is not a unit's
// current one: a new instance still taking over, or an old instance that
// handed over. It reports whether it knew the pid.
func (l *loop) exitedOutsideUnits(e supervise.Exit) bool {
	if up, ok := l.candidates[e.Pid]; ok {
		delete(l.candidates, e.Pid)
		up.newExit = &e
		l.log.Infof("component '%s': new instance pid %d %v", up.u.Name, e.Pid, e)
		if up.failure != nil { // the outcome came first and waits for this
			l.failHandoff(up)
		}
		return true
	}
	if r, ok := l.retiring[e.Pid]; ok {
		delete(l.retiring, e.Pid)
		l.log.Infof("component '%s': old instance pid %d %v after handing over", r.name, e.Pid, e)
		return true
	}
	return false
}

// killRetirees kills old instances that outstayed retireGrace.
func (l *loop) killRetirees(now time.Time) {
	for pid, r := range l.retiring {
		if !r.killAt.IsZero() && !now.Before(r.killAt) {
			l.log.Warnf("component '%s': old instance pid %d still runs %v after handing over; sending SIGKILL", r.name, pid, retireGrace)
			supervise.Signal(pid, syscall.SIGKILL)
			r.killAt = time.Time{}
			l.retiring[pid] = r
		}
	}
}

// upgradeDeadlines are the times the loop must wake up for upgrades.
func (l *loop) upgradeDeadlines(consider func(time.Time)) {
	for _, up := range l.upgrades {
		consider(up.restartBy)
	}
	for _, r := range l.retiring {
		consider(r.killAt)
	}
}

// startWithUpgradeSocket gives a fd-passing service its upgrade socket as
// descriptor 3. The returned function, called once the process started
// (or failed to), closes PID 1's copy of the service's end.
func (l *loop) startWithUpgradeSocket(u *unit, spec *supervise.Spec) (func(ok bool), error) {
	if u.Handoff != config.HandoffFDPassing {
		return func(bool) {}, nil
	}
	ctl, sock, err := handoff.NewControl()
	if err != nil {
		return nil, err
	}
	spec.ExtraFiles = append(spec.ExtraFiles, sock)
	spec.Env = append(spec.Env, handoff.EnvUpgradeFD+"=3")
	return func(ok bool) {
		sock.Close()
		if ok {
			u.ctl = ctl
		} else {
			ctl.Close()
		}
	}, nil
}

// closeUpgradeSocket drops a unit's upgrade socket once its process is gone.
func (u *unit) closeUpgradeSocket() {
	if u.ctl != nil {
		u.ctl.Close()
		u.ctl = nil
	}
}
