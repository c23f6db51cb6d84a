package resolver

import (
	"fmt"
	"strings"
	"syscall"
	"time"

	"yakimg/yakiros/checkpoint"
	"yakimg/yakiros/config"
	"yakimg/yakiros/isolate"
	"yakimg/yakiros/supervise"
)

// The CRIU level of `graphctl upgrade` (docs/CHECKPOINT.md, "Upgrade: the
// CRIU level"): criu dumps the running process without --leave-running (so
// nothing it does after the dump is lost, and criu ends it), the loop reaps
// it, criu restores the images detached and the restored process is
// re-attached to the unit, the way `graphctl restore` does it
// (checkpoint.go). The
// capabilities stay up throughout: dependents see a pause, not an end. A
// dump that fails leaves the process running and fd passing or a restart
// takes over; a restore that fails leaves nothing running, and a restart
// takes over. criu runs in goroutines; the loop never waits.

// criuSkip says why the CRIU level does not apply to up, or "".
func (l *loop) criuSkip(up *upgrade) string {
	u := up.u
	switch {
	case up.newCode:
		return "a new binary is given, and CRIU restores the running code"
	case isolate.Wanted(u.Component):
		return "an isolated component: a restored process would leave its cgroup and namespaces"
	}
	return ""
}

// checkpointable reports whether u's declaration lets upgrade use CRIU.
func checkpointable(u *unit) bool {
	return u.Checkpoint.Enabled || u.Handoff == config.HandoffCheckpoint
}

// upgradeByCRIU starts the CRIU level, or goes on with the next level when
// the declaration does not ask for CRIU (no attempt is reported then) or
// it does not apply (reported as skipped).
func (l *loop) upgradeByCRIU(up *upgrade) {
	u := up.u
	if !checkpointable(u) {
		l.handOverOrRestart(up)
		return
	}
	if why := l.criuSkip(up); why != "" {
		up.skip("criu", why)
		l.handOverOrRestart(up)
		return
	}
	up.attempt = time.Now()
	up.inFlight = true
	// A frozen process fails its checks: they resume with the process.
	l.cancelHealth(u)
	op := &ckptOp{u: u, up: up, start: up.attempt, pid: u.pid, caps: strings.Join(u.Provides, ",")}
	policy := checkpointPolicy(u)
	l.log.Infof("component '%s': upgrading by CRIU, dumping pid %d", u.Name, u.pid)
	go func() { l.deliverCheckpoint(l.ckpt.dump(op, policy)) }()
}

// onCRIUUpgrade applies an outcome of the CRIU level: a dump, then a
// restore (op.cp is set once the dump is usable).
func (l *loop) onCRIUUpgrade(o ckptOutcome) {
	op, up, u := o.op, o.op.up, o.op.u
	if op.cp != nil {
		l.criuRestored(o)
		return
	}
	if o.dumped {
		up.dumped = &o
		if up.oldExit == nil {
			// criu ended it; it is not reaped yet (its exit would be in
			// oldExit), so the pid is still its own. Make sure it ends.
			supervise.Signal(op.pid, syscall.SIGKILL)
		}
		l.restoreDumped(up)
		return
	}
	up.inFlight = false
	if up.oldExit != nil {
		l.releaseOldExit(up)
		l.finishUpgrade(up, "criu", fmt.Sprintf("%v; the old instance ended meanwhile", o.err))
		return
	}
	l.rewatchHealth(u)
	if o.noCRIU {
		up.skip("criu", o.err.Error())
	} else {
		l.log.Warnf("component '%s': CRIU upgrade failed: %v; pid %d runs on", u.Name, o.err, op.pid)
		up.record("criu", "failed", fmt.Sprintf("%v; the old instance runs on", o.err), 0, 0)
	}
	l.handOverOrRestart(up)
}

// restoreDumped begins the restore of a CRIU upgrade once criu has dumped
// the old instance and the loop has reaped it. It reports whether it
// moved up on.
func (l *loop) restoreDumped(up *upgrade) bool {
	if up.dumped == nil || up.oldExit == nil {
		return false
	}
	o, u := *up.dumped, up.u
	up.dumped = nil
	switch {
	case l.halt != nil || l.byName[u.Name] != u:
		l.releaseOldExit(up)
		l.finishUpgrade(up, "criu", fmt.Sprintf("pid %d was dumped, but the component was removed or the system is shutting down", o.op.pid))
	case o.err != nil:
		// The dump ended the process but left no usable checkpoint.
		l.log.Warnf("component '%s': CRIU upgrade: %v; pid %d was ended by the dump", u.Name, o.err, o.op.pid)
		up.record("criu", "failed", fmt.Sprintf("%v; the dump ended the old instance", o.err), 0, 0)
		l.handOverOrRestart(up)
	default:
		o.op.cp = &checkpoint.Checkpoint{Metadata: o.meta, Path: l.ckpt.store.Path(u.Name, o.meta.ID), Size: o.size}
		l.beginRestore(o.op)
	}
	return true
}

// criuRestored re-attaches the restored process and ends the upgrade, or
// lets a restart take over when the restore failed: the old instance is
// gone then.
func (l *loop) criuRestored(o ckptOutcome) {
	up, u := o.op.up, o.op.u
	if err := l.restoreErr(o); err != nil {
		if l.halt != nil || l.byName[u.Name] != u {
			l.releaseOldExit(up)
			l.finishUpgrade(up, "criu", fmt.Sprintf("restore: %v", err))
			return
		}
		l.log.Warnf("component '%s': CRIU upgrade: restore of checkpoint %s failed: %v", u.Name, o.meta.ID, err)
		up.record("criu", "failed", fmt.Sprintf("pid %d was dumped to checkpoint %s, but the restore failed: %v", o.op.pid, o.meta.ID, err), 0, 0)
		l.handOverOrRestart(up)
		return
	}
	up.oldExit, up.inFlight = nil, false // criu ended it, as it should
	l.reattach(u, o)
	up.data.NewPid = o.pid
	up.record("criu", "ok", fmt.Sprintf("pid %d dumped to checkpoint %s in %.0f ms, restored as pid %d in %.0f ms",
		o.op.pid, o.meta.ID, o.meta.DumpMS, o.pid, o.ms), 0, 0)
	l.finishUpgrade(up, "", "")
}

// releaseOldExit hands a kept exit of the old instance to the loop as the
// component's: its process has ended after all.
func (l *loop) releaseOldExit(up *upgrade) {
	up.inFlight = false
	if e := up.oldExit; e != nil {
		up.oldExit = nil
		l.byPid[e.Pid] = up.u
		l.exited(*e)
	}
}
