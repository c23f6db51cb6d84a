package resolver

import (
	"syscall"
	"time"

	"yakimg/yakiros/machine"
	"yakimg/yakiros/supervise"
)

// shutdown is the progress of an orderly shutdown, which runs inside the
// event loop like everything else: components are stopped in reverse
// dependency order, then (as PID 1) every remaining process gets SIGTERM and,
// after stopGrace, SIGKILL.
type shutdown struct {
	action   machine.Action
	phase    phase
	deadline time.Time // end of the current kill-all phase
	children bool      // PID 1 still has children to reap
	// requester is the component that asked for the shutdown, if one did;
	// it is stopped once nothing else runs.
	requester *unit
}

type phase int

const (
	stopComponents phase = iota
	terminateAll         // PID 1: SIGTERM sent to every process
	killAll              // PID 1: SIGKILL sent to every process
	finished
)

// beginShutdown starts shutting down; later requests change nothing.
func (l *loop) beginShutdown(a machine.Action, why string) {
	if l.halt != nil {
		l.log.Infof("%v requested (%s) while already shutting down for %v", a, why, l.halt.action)
		return
	}
	l.halt = &shutdown{action: a}
	l.log.Infof("%v requested (%s): stopping components", a, why)
}

func (l *loop) finished() bool {
	return l.halt != nil && l.halt.phase == finished
}

// advanceShutdown moves shutdown on as far as the current state allows.
func (l *loop) advanceShutdown() {
	h := l.halt
	now := time.Now()
	switch h.phase {
	case stopComponents:
		if l.stopNextComponents() {
			return
		}
		if !l.pid1 {
			l.log.Infof("all components stopped")
			h.phase = finished
			return
		}
		l.log.Infof("all components stopped; sending SIGTERM to all processes")
		l.signalAll(syscall.SIGTERM)
		h.phase, h.deadline = terminateAll, now.Add(stopGrace)
	case terminateAll:
		if h.children && now.Before(h.deadline) {
			return
		}
		l.log.Infof("sending SIGKILL to all processes")
		l.signalAll(syscall.SIGKILL)
		h.phase, h.deadline = killAll, now.Add(stopGrace)
	case killAll:
		if h.children && now.Before(h.deadline) {
			return
		}
		if h.children {
			l.log.Warnf("processes left after SIGKILL; going on with %v", h.action)
		}
		h.phase, h.deadline = finished, time.Time{}
		return
	case finished:
		return
	}
	l.advanceShutdown()
}

// stopNextComponents stops every running component that no other running
// component depends on and reports whether any component is still running.
func (l *loop) stopNextComponents() bool {
	running, stopping := 0, 0
	for _, u := range l.units {
		if u.alive {
			running++
		}
	}
	for _, u := range l.units {
		if !u.alive {
			continue
		}
		last := u == l.halt.requester && running > 1
		if u.state != Stopping && !last && !l.hasRunningDependent(u) {
			l.stop(u, "shutdown")
		}
		if u.state == Stopping {
			stopping++
		}
	}
	if running > 0 && stopping == 0 {
		// Only a dependency cycle can keep everything waiting on
		// everything else; break it by stopping all of them.
		for _, u := range l.units {
			if u.alive {
				l.stop(u, "shutdown")
			}
		}
	}
	return running > 0
}

// signalAll signals every process and reaps what has already exited, so
// h.children is current.
func (l *loop) signalAll(sig syscall.Signal) {
	if err := supervise.SignalAll(sig); err != nil {
		l.log.Errorf("%v", err)
	}
	l.halt.children = true
	l.reap()
}
