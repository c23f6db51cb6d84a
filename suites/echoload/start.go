package echoload

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// CPUMax is the cgroup cpu.max of the clients: 3 ms in every 10 ms, 30 % of
// one vCPU. Under single-threaded TCG the 64 clients still get through
// about a thousand lines a second, and the system under test keeps most of
// the one host thread. The short period spreads the pauses of throttling
// finely over an upgrade, so that lines are in flight throughout it.
const CPUMax = "3000 10000"

// Options says what to start.
type Options struct {
	// Command runs Main with the flags appended, e.g.
	// {"/usr/bin/yakimg-runner", "echo-load"}.
	Command []string
	Env     []string // added to this process's environment
	Addr    string
	Clients int
	// Cgroup is the cgroup v2 directory the clients run in, created with
	// cpu.weight 1 and cpu.max CPUMax and removed by Stop; "" runs them in
	// this process's group, uncapped (tests).
	Cgroup string
}

// Load is a running echo-load process.
type Load struct {
	cmd    *exec.Cmd
	stdin  *os.File
	cgroup string
	done   chan struct{} // the event stream ended

	mu      sync.Mutex
	clients []Client
	bad     error // an event that did not parse
}

// Start creates the cgroup and starts the clients. They connect at once;
// Seen says when each has been answered.
func Start(ctx context.Context, o Options) (*Load, error) {
	if len(o.Command) == 0 || o.Addr == "" || o.Clients < 1 {
		return nil, fmt.Errorf("echo load: want a command, an address and at least one client, have %+v", o)
	}
	args := append(o.Command[1:len(o.Command):len(o.Command)], "--addr", o.Addr, "--clients", strconv.Itoa(o.Clients))
	cmd := exec.CommandContext(ctx, o.Command[0], args...)
	cmd.Env = append(os.Environ(), o.Env...)
	cmd.Stderr = os.Stderr // usage errors only: the runner's log
	cmd.WaitDelay = 5 * time.Second
	l := &Load{cmd: cmd, clients: make([]Client, o.Clients), done: make(chan struct{})}
	if o.Cgroup != "" {
		dir, err := makeGroup(o.Cgroup)
		if err != nil {
			return nil, err
		}
		defer dir.Close()
		l.cgroup = o.Cgroup
		cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(dir.Fd())}
	}
	stdinR, stdinW, err := os.Pipe()
	if err != nil {
		l.removeGroup()
		return nil, fmt.Errorf("echo load: %w", err)
	}
	defer stdinR.Close()
	cmd.Stdin, l.stdin = stdinR, stdinW
	stdout, err := cmd.StdoutPipe()
	if err == nil {
		err = cmd.Start()
	}
	if err != nil {
		stdinW.Close()
		l.removeGroup()
		return nil, fmt.Errorf("echo load: start %s: %w", strings.Join(o.Command, " "), err)
	}
	go func() {
		defer close(l.done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			l.mu.Lock()
			if err := parse(sc.Text(), l.clients); err != nil && l.bad == nil {
				l.bad = err
			}
			l.mu.Unlock()
		}
	}()
	return l, nil
}

// Seen is how many versions client i has been answered by so far, and
// why it stopped if it did.
func (l *Load) Seen(i int) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.clients[i].Versions), l.clients[i].Err
}

// Usage is the CPU the clients took, from their cgroup's cpu.stat.
type Usage struct {
	CPU       time.Duration
	Throttled int // periods in which they hit CPUMax
}

// Stop tells the clients to finish the line they are on, waits for them
// and removes the cgroup. It returns every client's account, and the CPU
// they used when they ran in a cgroup. err is a failure of the load
// process itself, not of a client.
func (l *Load) Stop() ([]Client, Usage, error) {
	l.stdin.Close()
	<-l.done
	err := l.cmd.Wait()
	var use Usage
	if l.cgroup != "" {
		use = readUsage(l.cgroup)
	}
	if rerr := l.removeGroup(); err == nil {
		err = rerr
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err == nil {
		err = l.bad
	}
	for i, c := range l.clients {
		if err == nil && !c.stopped {
			err = fmt.Errorf("client %d did not report how it stopped", i)
		}
	}
	if err != nil {
		err = fmt.Errorf("echo load: %w", err)
	}
	return l.clients, use, err
}

// makeGroup creates the clients' cgroup below a cgroup v2 directory whose
// cpu controller it enables, and opens it for clone3's CLONE_INTO_CGROUP.
func makeGroup(dir string) (*os.File, error) {
	parent := filepath.Dir(dir)
	enabled, err := os.ReadFile(filepath.Join(parent, "cgroup.subtree_control"))
	if err != nil {
		return nil, fmt.Errorf("echo load: cgroup v2: %w", err)
	}
	if !strings.Contains(" "+strings.TrimSpace(string(enabled))+" ", " cpu ") {
		if err := writeFile(parent, "cgroup.subtree_control", "+cpu"); err != nil {
			return nil, fmt.Errorf("echo load: enable the cpu controller: %w", err)
		}
	}
	// A group left by an earlier run that was killed is reused.
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("echo load: %w", err)
	}
	for _, kv := range [][2]string{{"cpu.weight", "1"}, {"cpu.max", CPUMax}} {
		if err := writeFile(dir, kv[0], kv[1]); err != nil {
			os.Remove(dir)
			return nil, fmt.Errorf("echo load: %w", err)
		}
	}
	f, err := os.Open(dir)
	if err != nil {
		os.Remove(dir)
		return nil, fmt.Errorf("echo load: %w", err)
	}
	return f, nil
}

// writeFile writes a cgroup control file, which exists already.
func writeFile(dir, name, value string) error {
	if err := os.WriteFile(filepath.Join(dir, name), []byte(value), 0); err != nil {
		return fmt.Errorf("%w (writing %q)", err, value)
	}
	return nil
}

// readUsage reads usage_usec and nr_throttled; a missing figure is 0.
func readUsage(dir string) Usage {
	var u Usage
	data, _ := os.ReadFile(filepath.Join(dir, "cpu.stat"))
	for _, line := range strings.Split(string(data), "\n") {
		k, v, _ := strings.Cut(line, " ")
		n, _ := strconv.ParseInt(v, 10, 64)
		switch k {
		case "usage_usec":
			u.CPU = time.Duration(n) * time.Microsecond
		case "nr_throttled":
			u.Throttled = int(n)
		}
	}
	return u
}

// removeGroup removes the cgroup once the process has left it: a process
// that has exited may still be counted for a moment after it was reaped.
func (l *Load) removeGroup() error {
	if l.cgroup == "" {
		return nil
	}
	var err error
	for range 50 {
		if err = os.Remove(l.cgroup); err == nil || errors.Is(err, os.ErrNotExist) {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("remove %s: %w", l.cgroup, err)
}
