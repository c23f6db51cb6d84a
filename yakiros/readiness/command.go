package readiness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"yakimg/yakiros/supervise"
)

// pollCommand runs the check every Interval until it succeeds.
func (m *Manager) pollCommand(w *watch) error {
	if w.cfg.Command == "" {
		return errors.New("no readiness command given")
	}
	if w.cfg.Interval <= 0 {
		return fmt.Errorf("readiness interval %v is not positive", w.cfg.Interval)
	}
	for {
		if err := w.ctx.Err(); err != nil {
			return err
		}
		next := time.Now().Add(w.cfg.Interval)
		err := m.runCheck(w)
		if err == nil {
			return nil
		}
		w.last = err.Error()
		wait := time.NewTimer(time.Until(next))
		select {
		case <-wait.C:
		case <-w.poke:
		case <-w.ctx.Done():
		}
		wait.Stop()
	}
}

// runCheck runs the check once, killing it after Interval (counted from
// the fork, so a slow fork does not eat a check's time) or when w ends.
// Either way its whole process group is killed afterwards: a check leaves
// nothing behind.
func (m *Manager) runCheck(w *watch) error {
	pid, exited, err := m.spawn(w)
	if err != nil {
		return err
	}
	// The group outlives its leader only while members remain, so this can
	// reach another group only if pids wrapped around meanwhile.
	defer unix.Kill(-pid, unix.SIGKILL)
	start := time.Now()
	ctx, cancel := context.WithTimeout(w.ctx, w.cfg.Interval)
	defer cancel()
	select {
	case e := <-exited:
		if !e.Success() {
			return fmt.Errorf("%s", e)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("killed after %v without exiting", time.Since(start).Round(time.Millisecond))
	}
}

// spawn forks /bin/sh -c Command in a process group of its own, output to
// Options.Output (the component's log). The fork goes
// through supervise.Waiters, so that Exited gets its exit.
func (m *Manager) spawn(w *watch) (int, <-chan supervise.Exit, error) {
	null, err := os.Open(os.DevNull)
	if err != nil {
		return 0, nil, fmt.Errorf("start check: %w", err)
	}
	defer null.Close()
	out := null
	if m.opts.Output != nil {
		f, err := m.opts.Output(w.name)
		if err != nil {
			return 0, nil, fmt.Errorf("start check: %w", err)
		}
		defer f.Close()
		out = f
	}
	pid, ch, err := m.checks.Fork(func() (int, error) {
		return syscall.ForkExec("/bin/sh", []string{"/bin/sh", "-c", w.cfg.Command}, &syscall.ProcAttr{
			Dir:   "/",
			Env:   os.Environ(),
			Files: []uintptr{null.Fd(), out.Fd(), out.Fd()},
			Sys:   &syscall.SysProcAttr{Setpgid: true},
		})
	})
	if err != nil {
		return 0, nil, fmt.Errorf("start check: %w", err)
	}
	return pid, ch, nil
}

// Exited claims e if it is the exit of a check: PID 1's loop reaps every
// child (supervise.Reap) and passes each exit that is not one of its
// components here. It never blocks for long: at most for a fork in progress.
func (m *Manager) Exited(e supervise.Exit) bool {
	return m.checks.Exited(e)
}
