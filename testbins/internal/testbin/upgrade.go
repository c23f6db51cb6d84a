package testbin

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"yakimg/yakiros/handoff"
)

// Instance is a service process started the way graph-resolver starts a
// component with handoff = "fd-passing": its end of an upgrade socket is
// descriptor 3 ($YAKIROS_UPGRADE_FD), and the new instance of an upgrade
// gets its end of the channel as descriptor 4 ($YAKIROS_HANDOFF_FD). The
// process is killed when the test ends.
type Instance struct {
	Cmd  *exec.Cmd
	ctl  *handoff.Control
	out  *Output
	exit chan struct{} // closed once the process has ended
	err  error         // its exit status, once exit is closed
}

// StartInstance runs bin with args and env added to this process's
// environment, with an upgrade socket.
func StartInstance(t testing.TB, bin string, env []string, args ...string) *Instance {
	t.Helper()
	ctl, sock, err := handoff.NewControl()
	if err != nil {
		t.Fatal(err)
	}
	env = append(env, fmt.Sprintf("%s=%d", handoff.EnvUpgradeFD, handoff.UpgradeFD))
	return start(t, ctl, []*os.File{sock}, bin, env, args)
}

// start runs bin with files as descriptors 3, 4... and closes this
// process's copies of them.
func start(t testing.TB, ctl *handoff.Control, files []*os.File, bin string, env, args []string) *Instance {
	t.Helper()
	in := &Instance{Cmd: exec.Command(bin, args...), ctl: ctl, out: &Output{}, exit: make(chan struct{})}
	in.Cmd.Env = append(os.Environ(), env...)
	in.Cmd.ExtraFiles = files
	in.Cmd.Stdout, in.Cmd.Stderr = in.out, in.out
	err := in.Cmd.Start()
	for _, f := range files {
		f.Close()
	}
	if err != nil {
		ctl.Close()
		t.Fatal(err)
	}
	go func() {
		in.err = in.Cmd.Wait()
		close(in.exit)
	}()
	t.Cleanup(func() {
		in.Cmd.Process.Kill()
		<-in.exit
		ctl.Close()
		if t.Failed() {
			t.Logf("%s (pid %d) said:\n%s", filepath.Base(bin), in.Pid(), in.Output())
		}
	})
	return in
}

// Upgrade does what graph-resolver does for `graphctl upgrade`: it asks
// in for a handoff with timeout, starts bin with args and env as the new
// instance and waits for in's report. The new instance is returned also
// when the handoff failed; a FailedError means in serves on.
func (in *Instance) Upgrade(t testing.TB, timeout time.Duration, bin string, env []string, args ...string) (*Instance, handoff.Result, error) {
	t.Helper()
	ctl, sock, err := handoff.NewControl()
	if err != nil {
		t.Fatal(err)
	}
	u, err := in.ctl.Upgrade(timeout)
	if err != nil {
		ctl.Close()
		sock.Close()
		t.Fatal(err)
	}
	env = append(env,
		fmt.Sprintf("%s=%d", handoff.EnvUpgradeFD, handoff.UpgradeFD),
		fmt.Sprintf("%s=%d", handoff.EnvHandoffFD, handoff.HandoffFD))
	// start closes this process's copy of u.New, as Wait does again: a
	// second Close of an *os.File does nothing.
	next := start(t, ctl, []*os.File{sock, u.New}, bin, env, args)
	ctx, cancel := context.WithTimeout(context.Background(), timeout+5*time.Second)
	defer cancel()
	res, err := u.Wait(ctx)
	return next, res, err
}

// Pid is the process's id.
func (in *Instance) Pid() int { return in.Cmd.Process.Pid }

// Output is what the process wrote to stdout and stderr so far.
func (in *Instance) Output() string { return in.out.String() }

// Logged waits up to ten seconds for a running instance's output to contain
// want: it arrives through a pipe, which may lag what the instance did.
func (in *Instance) Logged(want string) bool {
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if strings.Contains(in.Output(), want) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

// Exit waits up to 20 s for the process to end by itself and returns how
// it ended (nil: status 0).
func (in *Instance) Exit(t testing.TB) error {
	t.Helper()
	select {
	case <-in.exit:
		return in.err
	case <-time.After(20 * time.Second):
		t.Fatalf("pid %d did not exit within 20 s", in.Pid())
		return nil
	}
}

// Running says whether the process is still running.
func (in *Instance) Running() bool {
	select {
	case <-in.exit:
		return false
	default:
		return true
	}
}

// Output collects a process's output; it may be read while it is written.
type Output struct {
	mu sync.Mutex
	b  strings.Builder
}

func (o *Output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.Write(p)
}

func (o *Output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.String()
}

// Notifier is a NOTIFY_SOCKET as graph-resolver has it: a unix datagram
// socket that learns each datagram's sender from the kernel.
type Notifier struct {
	path string
	mu   sync.Mutex
	cond *sync.Cond
	got  map[int][]string // datagrams by sender pid
	err  error
}

// NewNotifier listens on a socket in a temporary directory until the test
// ends.
func NewNotifier(t testing.TB) *Notifier {
	t.Helper()
	n := &Notifier{path: filepath.Join(t.TempDir(), "notify.sock"), got: map[int][]string{}}
	n.cond = sync.NewCond(&n.mu)
	ln, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: n.path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := ln.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_PASSCRED, 1)
	}); err != nil || serr != nil {
		t.Fatalf("SO_PASSCRED: %v, %v", err, serr)
	}
	t.Cleanup(func() { ln.Close() })
	go n.read(ln)
	return n
}

func (n *Notifier) read(ln *net.UnixConn) {
	buf, oob := make([]byte, 4096), make([]byte, syscall.CmsgSpace(syscall.SizeofUcred))
	for {
		b, oobn, _, _, err := ln.ReadMsgUnix(buf, oob)
		pid := 0
		if err == nil {
			pid, err = sender(oob[:oobn])
		}
		n.mu.Lock()
		if err != nil {
			n.err = err
			n.cond.Broadcast()
			n.mu.Unlock()
			return
		}
		n.got[pid] = append(n.got[pid], string(buf[:b]))
		n.cond.Broadcast()
		n.mu.Unlock()
	}
}

func sender(oob []byte) (int, error) {
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil || len(msgs) != 1 {
		return 0, fmt.Errorf("control messages %v, %v; want the sender's credentials", msgs, err)
	}
	cred, err := syscall.ParseUnixCredentials(&msgs[0])
	if err != nil {
		return 0, err
	}
	return int(cred.Pid), nil
}

// Env is the environment entry that points a service at the socket.
func (n *Notifier) Env() []string { return []string{"NOTIFY_SOCKET=" + n.path} }

// Ready waits up to 20 s for a datagram with READY=1 from pid and returns
// it.
func (n *Notifier) Ready(t testing.TB, pid int) string {
	t.Helper()
	timer := time.AfterFunc(20*time.Second, func() {
		n.mu.Lock()
		n.err = fmt.Errorf("no READY=1 from pid %d within 20 s", pid)
		n.cond.Broadcast()
		n.mu.Unlock()
	})
	defer timer.Stop()
	n.mu.Lock()
	defer n.mu.Unlock()
	for {
		for _, d := range n.got[pid] {
			if strings.HasPrefix(d, "READY=1\n") || d == "READY=1" {
				return d
			}
		}
		if n.err != nil {
			t.Fatalf("notify socket: %v", n.err)
		}
		n.cond.Wait()
	}
}
