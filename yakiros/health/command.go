package health

import (
	"context"
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"

	"yakimg/yakiros/supervise"
)

// runCommand runs the check command once; ctx ends at the timeout or when
// w ends. Either way its whole process group is killed afterwards: a check
// leaves nothing behind.
func (m *Manager) runCommand(ctx context.Context, w *watch) (bool, string) {
	pid, exited, err := m.spawn(w)
	if err != nil {
		return false, err.Error()
	}
	// The group outlives its leader only while members remain, so this can
	// reach another group only if pids wrapped around meanwhile.
	defer unix.Kill(-pid, unix.SIGKILL)
	select {
	case e := <-exited:
		if !e.Success() {
			return false, e.String()
		}
		return true, ""
	case <-ctx.Done():
		return false, fmt.Sprintf("timed out after %v, killed", w.cfg.Timeout)
	}
}

// checkFiles are the stdin (/dev/null) and the output of a watch's checks,
// opened at its first check and kept until it ends: a check every second
// should not cost PID 1 a new pipe and copying goroutine each time.
type checkFiles struct{ null, out *os.File }

func (f *checkFiles) close() {
	f.null.Close()
	if f.out != f.null {
		f.out.Close()
	}
}

// files opens w's check files if they are not open yet.
func (m *Manager) files(w *watch) (*checkFiles, error) {
	if w.files != nil {
		return w.files, nil
	}
	null, err := os.Open(os.DevNull)
	if err != nil {
		return nil, err
	}
	f := &checkFiles{null: null, out: null}
	if m.opts.Output != nil {
		if f.out, err = m.opts.Output(w.name); err != nil {
			null.Close()
			return nil, err
		}
	}
	w.files = f
	return f, nil
}

// spawn forks /bin/sh -c Command in a process group of its own, in /, with
// PID 1's environment, stdin from /dev/null and its output to
// Options.Output. The fork goes through
// supervise.Waiters, so that Exited gets its exit.
func (m *Manager) spawn(w *watch) (int, <-chan supervise.Exit, error) {
	files, err := m.files(w)
	if err != nil {
		return 0, nil, fmt.Errorf("start check: %w", err)
	}
	pid, ch, err := m.checks.Fork(func() (int, error) {
		return syscall.ForkExec("/bin/sh", []string{"/bin/sh", "-c", w.cfg.Command}, &syscall.ProcAttr{
			Dir:   "/",
			Env:   os.Environ(),
			Files: []uintptr{files.null.Fd(), files.out.Fd(), files.out.Fd()},
			Sys:   &syscall.SysProcAttr{Setpgid: true},
		})
	})
	if err != nil {
		return 0, nil, fmt.Errorf("start check: %w", err)
	}
	return pid, ch, nil
}

// Exited claims e if it is the exit of a command check: PID 1's loop reaps
// every child (supervise.Reap) and passes each exit that is not one of its
// components here. It never blocks for long: at most for a fork in progress.
func (m *Manager) Exited(e supervise.Exit) bool {
	return m.checks.Exited(e)
}
