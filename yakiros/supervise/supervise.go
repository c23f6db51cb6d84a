// Package supervise starts component processes and reaps them. Every process
// runs in its own session, in /, with /dev/null as stdin and a clean
// environment; its stdout and stderr go through a pipe into its log (see
// Logs). Only Reap collects exit statuses: the caller (PID 1's event loop)
// calls it on every SIGCHLD, so orphans are reaped too.
package supervise

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// Spec is what Start needs to run one component.
type Spec struct {
	Name   string
	Binary string   // absolute path; no PATH lookup
	Args   []string // argv[1:]
	Argv0  string   // argv[0]; "" for Binary
	Env    []string // KEY=VALUE added to the base environment (see Start)
	// ExtraFiles become the child's descriptors 3, 4, ... (a handoff's
	// upgrade socket and channel). The caller keeps and closes its copies.
	ExtraFiles []*os.File
	// Isolation, if not nil, is applied by the clone itself (package
	// isolate prepares it): the process never runs outside it.
	Isolation *Isolation
}

// Isolation is what the clone of an isolated component does.
type Isolation struct {
	CgroupFD   int     // a cgroup v2 directory to clone into; -1 for PID 1's own
	Cloneflags uintptr // CLONE_NEW* flags of the namespaces to create
	// With CLONE_NEWUSER: the uid_map and gid_map PID 1 writes before
	// the child goes on.
	UIDMap, GIDMap []syscall.SysProcIDMap
	// Credential is who the process becomes inside its user namespace.
	Credential *syscall.Credential
}

// defaultPath is the children's PATH when PID 1 has none (the kernel gives
// init no PATH).
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// environment is what a child gets: PATH (PID 1's, or defaultPath),
// HOME=/, TERM if PID 1 has one, then extra. Nothing else of PID 1's
// environment leaks into components.
func environment(extra []string) []string {
	path := os.Getenv("PATH")
	if path == "" {
		path = defaultPath
	}
	env := []string{"PATH=" + path, "HOME=/"}
	if term := os.Getenv("TERM"); term != "" {
		env = append(env, "TERM="+term)
	}
	return append(env, extra...)
}

// Start runs spec and returns its pid once the binary is executing:
// syscall.ForkExec reports a failed exec synchronously (through a
// close-on-exec pipe) and reaps that child itself, so an error here means
// no process is left. Output is copied into logs by a goroutine of its own,
// after the header line "[<epoch>] Starting component '<name>' (pid P)"; a
// failed start is noted in the log too.
func Start(spec Spec, logs *Logs) (int, error) {
	f, err := logs.open(spec.Name)
	if err != nil {
		return 0, fmt.Errorf("start %s: %w", spec.Name, err)
	}
	pid, r, err := forkExec(spec)
	if err != nil {
		go func() {
			f.note(fmt.Sprintf("Failed to start component '%s': %v", spec.Name, err))
			logs.release(f)
		}()
		return 0, err
	}
	go logs.copy(f, r, fmt.Sprintf("Starting component '%s' (pid %d)", spec.Name, pid))
	return pid, nil
}

// forkExec starts the process with its output on a pipe and returns the
// pipe's read end.
func forkExec(spec Spec) (int, *os.File, error) {
	null, err := os.Open(os.DevNull)
	if err != nil {
		return 0, nil, fmt.Errorf("start %s: %w", spec.Name, err)
	}
	defer null.Close()
	r, w, err := os.Pipe()
	if err != nil {
		return 0, nil, fmt.Errorf("start %s: output pipe: %w", spec.Name, err)
	}
	defer w.Close()
	argv0 := spec.Binary
	if spec.Argv0 != "" {
		argv0 = spec.Argv0
	}
	argv := append([]string{argv0}, spec.Args...)
	files := []uintptr{null.Fd(), w.Fd(), w.Fd()}
	for _, f := range spec.ExtraFiles {
		files = append(files, f.Fd())
	}
	sys := &syscall.SysProcAttr{Setsid: true}
	if iso := spec.Isolation; iso != nil {
		sys.UseCgroupFD, sys.CgroupFD = iso.CgroupFD >= 0, iso.CgroupFD
		sys.Cloneflags = iso.Cloneflags
		sys.UidMappings, sys.GidMappings = iso.UIDMap, iso.GIDMap
		sys.Credential = iso.Credential
	}
	pid, err := syscall.ForkExec(spec.Binary, argv, &syscall.ProcAttr{
		Dir:   "/",
		Env:   environment(spec.Env),
		Files: files,
		Sys:   sys,
	})
	if err != nil {
		r.Close()
		if spec.Isolation != nil {
			// The clone itself may be what failed: a namespace or
			// cgroup the kernel refused.
			return 0, nil, fmt.Errorf("clone into namespaces (flags %#x) and cgroup, exec %s: %w",
				spec.Isolation.Cloneflags, spec.Binary, err)
		}
		return 0, nil, fmt.Errorf("exec %s: %w", spec.Binary, err)
	}
	return pid, r, nil
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
