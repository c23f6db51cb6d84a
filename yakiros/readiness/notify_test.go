package readiness

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"yakimg/yakiros/config"
)

// notifier starts a helper process (a session leader) that sends msg to
// m's notify socket and stays alive.
func notifier(t *testing.T, m *Manager, msg string) int {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return spawn(t, []string{self}, helperEnv+"=notify", helperMessage+"="+msg, "NOTIFY_SOCKET="+m.opts.NotifySocket)
}

func TestNotifyReadyFromWatchedProcess(t *testing.T) {
	m, _, _ := setup(t)
	cfg := config.Readiness{Method: config.ReadyNotify, Timeout: time.Minute}
	if env := m.Env(cfg); !slices.Equal(env, []string{"NOTIFY_SOCKET=" + m.opts.NotifySocket}) {
		t.Errorf("Env(notify) = %q; want NOTIFY_SOCKET=%s", env, m.opts.NotifySocket)
	}
	pid := notifier(t, m, "STATUS=warming up\nREADY=1\nMAINPID=1\n")
	m.Watch("api", pid, cfg)
	ev, seen := outcome(t, m, "api")
	want := []Event{{Name: "api", Pid: pid, Status: "warming up"}, {Name: "api", Pid: pid, Ready: true}}
	if !ev.Ready || !slices.Equal(seen, want) {
		t.Errorf("events = %+v; want %+v", seen, want)
	}
}

// HEALTH= and WATCHDOG= lines reach the loop whole, as Health events of
// their own (the last such line of a datagram), next to the Status event.
func TestNotifyPassesHealthOn(t *testing.T) {
	m, _, _ := setup(t)
	pid := notifier(t, m, "READY=1\nHEALTH=ok\nSTATUS=serving\nHEALTH=fail:disk full")
	m.Watch("api", pid, config.Readiness{Method: config.ReadyNotify, Timeout: time.Minute})
	_, seen := outcome(t, m, "api")
	want := []Event{{Name: "api", Pid: pid, Status: "serving"}, {Name: "api", Pid: pid, Health: "HEALTH=fail:disk full"},
		{Name: "api", Pid: pid, Ready: true}}
	if !slices.Equal(seen, want) {
		t.Errorf("events = %+v; want %+v", seen, want)
	}
	if got := parse([]byte("WATCHDOG=1\nMAINPID=5")); got.health != "WATCHDOG=1" || got.ready || got.hasStatus {
		t.Errorf("parse(WATCHDOG=1) = %+v; want the line passed on as health", got)
	}
}

func TestNotifyReadyFromSessionMember(t *testing.T) {
	m, _, _ := setup(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// The shell is the component's process; its child sends READY=1.
	sh := spawn(t, []string{"/bin/sh", "-c", `"$0" & wait`, self},
		helperEnv+"=notify", helperMessage+"=READY=1", "NOTIFY_SOCKET="+m.opts.NotifySocket)
	m.Watch("api", sh, config.Readiness{Method: config.ReadyNotify, Timeout: time.Minute})
	if ev, _ := outcome(t, m, "api"); !ev.Ready || ev.Pid != sh {
		t.Errorf("outcome = %+v; want ready for pid %d", ev, sh)
	}
}

func TestNotifyFromUnrelatedProcessIgnored(t *testing.T) {
	m, _, l := setup(t)
	watched := spawn(t, []string{"/bin/sleep", "60"})
	m.Watch("api", watched, config.Readiness{Method: config.ReadyNotify, Timeout: time.Second})
	stranger := notifier(t, m, "READY=1")
	l.wait(t, fmt.Sprintf("message from pid %d (session %d) is not from a watched component", stranger, stranger))
	ev, seen := outcome(t, m, "api")
	if !errors.Is(ev.Err, ErrTimeout) || len(seen) != 1 {
		t.Errorf("events = %+v; want only a timeout", seen)
	}
}

func TestNotifyBeforeWatchIsClaimed(t *testing.T) {
	m, _, l := setup(t)
	pid := notifier(t, m, "READY=1\nSTATUS=early")
	l.wait(t, fmt.Sprintf("message from pid %d ", pid))
	m.Watch("api", pid, config.Readiness{Method: config.ReadyNotify, Timeout: time.Minute})
	ev, seen := outcome(t, m, "api")
	want := []Event{{Name: "api", Pid: pid, Status: "early"}, {Name: "api", Pid: pid, Ready: true}}
	if !ev.Ready || !slices.Equal(seen, want) {
		t.Errorf("events = %+v; want %+v", seen, want)
	}
}

func TestSignalIsNotify(t *testing.T) {
	m, _, l := setup(t)
	cfg := config.Readiness{Method: config.ReadySignal, Signal: syscall.SIGUSR1, Timeout: time.Minute}
	if env := m.Env(cfg); !slices.Equal(env, []string{"NOTIFY_SOCKET=" + m.opts.NotifySocket}) {
		t.Errorf("Env(signal) = %q; want NOTIFY_SOCKET=%s", env, m.opts.NotifySocket)
	}
	if env := m.Env(config.Readiness{Method: config.ReadyFile}); env != nil {
		t.Errorf("Env(file) = %q; want nothing", env)
	}
	pid := notifier(t, m, "READY=1")
	m.Watch("old", pid, cfg)
	l.wait(t, "component 'old': readiness by signal cannot be attributed")
	if ev, _ := outcome(t, m, "old"); !ev.Ready || ev.Pid != pid {
		t.Errorf("outcome = %+v; want ready for pid %d", ev, pid)
	}
}

func TestNotifyWithoutSocketFails(t *testing.T) {
	m, err := NewManager(Options{})
	if err != nil {
		t.Fatalf("NewManager: %v", err)
	}
	defer m.Close()
	cfg := config.Readiness{Method: config.ReadyNotify}
	if env := m.Env(cfg); env != nil {
		t.Errorf("Env without a socket = %q; want nothing", env)
	}
	m.Watch("api", 5, cfg)
	if ev, _ := outcome(t, m, "api"); ev.Err == nil || ev.Err.Error() != "no notify socket configured" {
		t.Errorf("outcome = %+v; want error no notify socket configured", ev)
	}
}

func TestNotifySocketReplacesStaleOne(t *testing.T) {
	dir := t.TempDir()
	sock := dir + "/notify.sock"
	// A socket file left by a crashed run: bound once, nobody listens.
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	err = unix.Bind(fd, &unix.SockaddrUnix{Name: sock})
	unix.Close(fd)
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewManager(Options{NotifySocket: sock})
	if err != nil {
		t.Fatalf("NewManager over a stale socket: %v", err)
	}
	fi, err := os.Lstat(sock)
	if err != nil || fi.Mode() != os.ModeSocket|0o600 {
		t.Errorf("notify socket: %v, %v; want a socket with mode 0600", fi.Mode(), err)
	}
	if err := m.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := os.WriteFile(dir+"/plain", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = NewManager(Options{NotifySocket: dir + "/plain"})
	if want := "notify socket " + dir + "/plain: exists and is not a socket"; err == nil || err.Error() != want {
		t.Errorf("NewManager(regular file) = %v; want %s", err, want)
	}
}
