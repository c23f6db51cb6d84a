package checkpoint

import (
	"context"
	"fmt"
	"os"
	"sync"
	"syscall"
)

// Procs runs criu under PID 1, which reaps every child itself: a criu
// started with os/exec would have its exit reaped by PID 1's loop before
// cmd.Wait saw it. The loop hands every exit that is not a component's to
// Exited.
type Procs struct {
	mu      sync.Mutex
	waiting map[int]chan syscall.WaitStatus
}

// NewProcs returns an empty Procs.
func NewProcs() *Procs { return &Procs{waiting: map[int]chan syscall.WaitStatus{}} }

// Exited claims the exit of pid if it is a criu run here. It blocks at most
// for a fork in progress.
func (p *Procs) Exited(pid int, ws syscall.WaitStatus) bool {
	p.mu.Lock()
	ch, ok := p.waiting[pid]
	delete(p.waiting, pid)
	p.mu.Unlock()
	if ok {
		ch <- ws // buffered; nobody else sends
	}
	return ok
}

// run forks path with args in a process group of its own, its output into
// outFile (or /dev/null), extra files from fd 3, and waits for its exit;
// when ctx ends first the group is killed.
func (p *Procs) run(ctx context.Context, path string, args []string, outFile string, extra []*os.File) error {
	null, err := os.Open(os.DevNull)
	if err != nil {
		return err
	}
	defer null.Close()
	out := null
	if outFile != "" {
		if out, err = os.OpenFile(outFile, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600); err != nil {
			return err
		}
		defer out.Close()
	}
	files := []uintptr{null.Fd(), out.Fd(), out.Fd()}
	for _, f := range extra {
		files = append(files, f.Fd())
	}
	ch := make(chan syscall.WaitStatus, 1)
	p.mu.Lock()
	pid, err := syscall.ForkExec(path, append([]string{path}, args...), &syscall.ProcAttr{
		Dir: "/", Env: os.Environ(), Files: files, Sys: &syscall.SysProcAttr{Setpgid: true},
	})
	if err == nil {
		p.waiting[pid] = ch
	}
	p.mu.Unlock()
	if err != nil {
		return fmt.Errorf("exec %s: %w", path, err)
	}
	var ws syscall.WaitStatus
	select {
	case ws = <-ch:
	case <-ctx.Done():
		syscall.Kill(-pid, syscall.SIGKILL)
		ws = <-ch
	}
	switch {
	case ws.Exited() && ws.ExitStatus() == 0:
		return nil
	case ws.Exited():
		return fmt.Errorf("exit status %d", ws.ExitStatus())
	default:
		return fmt.Errorf("killed by %v", ws.Signal())
	}
}
