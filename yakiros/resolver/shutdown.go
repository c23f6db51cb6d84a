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
	deadline time.Time // end of the requester's grace or of a kill-all phase
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
// The component that asked for the shutdown goes last, and is first given
// stopGrace to exit by itself: it usually is the suite runner, whose last
// act was the request.
func (l *loop) stopNextComponents() bool {
	h := l.halt
	var running []*unit
	for _, u := range l.units {
		if u.alive {
			running = append(running, u)
		}
	}
	progress := false
	for _, u := range running {
		if u.state == Stopping {
			progress = true
			continue
		}
		if l.hasRunningDependent(u) {
			continue
		}
		if u == h.requester {
			if len(running) > 1 {
				continue
			}
			if h.deadline.IsZero() {
				h.deadline = time.Now().Add(stopGrace)
				l.log.Infof("waiting up to %v for '%s', which asked for the shutdown, to exit", stopGrace, u.Name)
			}
			if time.Now().Before(h.deadline) {
				progress = true
				continue
			}
		}
		l.stop(u, "shutdown", Inactive)
		progress = true
	}
	if !progress {
		// Only a dependency cycle can keep everything waiting on
		// everything else; break it by stopping all of them.
		for _, u := range running {
			l.stop(u, "shutdown", Inactive)
		}
	}
	return len(running) > 0
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
