// Package supervise starts component processes and reaps them. Every process
// runs in its own session with stdout and stderr appended to
// <LogDir>/<name>.log. Only Reap collects exit statuses: the caller (PID 1's
// event loop) calls it on every SIGCHLD, so orphans are reaped too.
package supervise

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
)

// Spec is what Start needs to run one component.
type Spec struct {
	Name   string
	Binary string
	Args   []string // argv[1:]
	LogDir string
}

// Started reports whether a process started by Start reached its binary.
type Started struct {
	Name string
	Pid  int
	Err  error // nil when exec succeeded
}

// Start forks a process for spec and returns its pid. The process first runs
// this program's launcher (see launch.go), which writes the log header and
// execs spec.Binary under the same pid; report is called once, from another
// goroutine, when that exec has succeeded or failed. A failed exec also ends
// the process with status 127.
func Start(spec Spec, report func(Started)) (int, error) {
	if err := os.MkdirAll(spec.LogDir, 0o755); err != nil {
		return 0, fmt.Errorf("start %s: %w", spec.Name, err)
	}
	logPath := filepath.Join(spec.LogDir, spec.Name+".log")
	logFile, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return 0, fmt.Errorf("start %s: %w", spec.Name, err)
	}
	defer logFile.Close()
	null, err := os.Open(os.DevNull)
	if err != nil {
		return 0, fmt.Errorf("start %s: %w", spec.Name, err)
	}
	defer null.Close()
	statusR, statusW, err := os.Pipe()
	if err != nil {
		return 0, fmt.Errorf("start %s: %w", spec.Name, err)
	}
	defer statusW.Close()

	argv := append([]string{spec.Binary}, spec.Args...)
	pid, err := syscall.ForkExec("/proc/self/exe", argv, &syscall.ProcAttr{
		Dir:   "/",
		Env:   append(os.Environ(), launchEnv+"="+spec.Name),
		Files: []uintptr{null.Fd(), logFile.Fd(), logFile.Fd(), statusW.Fd()},
		Sys:   &syscall.SysProcAttr{Setsid: true},
	})
	if err != nil {
		statusR.Close()
		return 0, fmt.Errorf("start %s: fork launcher: %w", spec.Name, err)
	}
	go func() {
		defer statusR.Close()
		// The launcher's copy of the pipe closes on a successful exec;
		// anything written before that is the reason exec failed.
		msg, err := io.ReadAll(statusR)
		if err == nil && len(msg) > 0 {
			err = errors.New(string(msg))
		}
		report(Started{Name: spec.Name, Pid: pid, Err: err})
	}()
	return pid, nil
}

// Exit is a reaped child.
type Exit struct {
	Pid    int
	Status syscall.WaitStatus
}

// Success reports whether the process exited with status 0.
func (e Exit) Success() bool {
	return e.Status.Exited() && e.Status.ExitStatus() == 0
}

func (e Exit) String() string {
	if e.Status.Signaled() {
		return fmt.Sprintf("killed by signal %d (%v)", int(e.Status.Signal()), e.Status.Signal())
	}
	return fmt.Sprintf("exited with status %d", e.Status.ExitStatus())
}

// Reap collects every child that has exited, without blocking. more is false
// once the caller has no children left at all.
func Reap() (exits []Exit, more bool, err error) {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		switch {
		case errors.Is(err, syscall.EINTR):
			continue
		case errors.Is(err, syscall.ECHILD):
			return exits, false, nil
		case err != nil:
			return exits, true, fmt.Errorf("wait4: %w", err)
		case pid == 0:
			return exits, true, nil
		}
		exits = append(exits, Exit{Pid: pid, Status: ws})
	}
}

// Signal sends sig to the session (process group) Start created for pid, so
// the component's own children get it too; if the group is gone, to pid.
func Signal(pid int, sig syscall.Signal) error {
	if pid <= 0 {
		return fmt.Errorf("signal %v: invalid pid %d", sig, pid)
	}
	err := syscall.Kill(-pid, sig)
	if errors.Is(err, syscall.ESRCH) {
		err = syscall.Kill(pid, sig)
	}
	if err != nil {
		return fmt.Errorf("signal %v to %d: %w", sig, pid, err)
	}
	return nil
}

// SignalAll sends sig to every process except the caller. Only PID 1 may use
// it, at shutdown: anywhere else it would hit the whole user's processes.
func SignalAll(sig syscall.Signal) error {
	if os.Getpid() != 1 {
		return fmt.Errorf("signal %v to all processes: refused, not PID 1", sig)
	}
	if err := syscall.Kill(-1, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("signal %v to all processes: %w", sig, err)
	}
	return nil
}
