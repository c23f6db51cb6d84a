package echoload

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// The test binary is also the load process: Start runs it with
// ECHOLOAD_MAIN=1.
func TestMain(m *testing.M) {
	if os.Getenv("ECHOLOAD_MAIN") == "1" {
		os.Exit(Main(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// echoServer answers "<version> <line>" with the version it holds now; a
// faulty one answers every tenth line twice.
func echoServer(t *testing.T, version *atomic.Value, faulty bool) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for n := 1; ; n++ {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					reply := fmt.Sprintf("%s %s", version.Load(), line)
					if faulty && n%10 == 0 {
						reply += reply
					}
					if _, err := c.Write([]byte(reply)); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func start(t *testing.T, addr string, clients int, cgroup string) *Load {
	t.Helper()
	l, err := Start(context.Background(), Options{
		Command: []string{os.Args[0]}, Env: []string{"ECHOLOAD_MAIN=1"},
		Addr: addr, Clients: clients, Cgroup: cgroup,
	})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// waitSeen waits until every client has seen n versions.
func waitSeen(t *testing.T, l *Load, clients, n int) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		all := true
		for i := range clients {
			seen, err := l.Seen(i)
			if err != nil {
				t.Fatalf("client %d stopped: %v", i, err)
			}
			all = all && seen >= n
		}
		if all {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not every client saw %d versions in 20s", n)
		}
	}
}

func TestClientsSeeEveryVersion(t *testing.T) {
	var version atomic.Value
	version.Store("v1")
	addr := echoServer(t, &version, false)
	const clients = 8
	l := start(t, addr, clients, "")
	waitSeen(t, l, clients, 1)
	version.Store("v1+1")
	waitSeen(t, l, clients, 2)
	got, _, err := l.Stop()
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range got {
		if c.Err != nil || c.Replies < 2 || strings.Join(c.Versions, ",") != "v1,v1+1" {
			t.Errorf("client %d: %+v; want versions v1,v1+1, at least 2 replies and no error", i, c)
		}
	}
}

func TestRepeatedReplyIsAnError(t *testing.T) {
	var version atomic.Value
	version.Store("v1")
	l := start(t, echoServer(t, &version, true), 2, "")
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if _, err := l.Seen(0); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a client answered twice did not stop in 20s")
		}
	}
	got, _, err := l.Stop()
	if err != nil {
		t.Fatal(err)
	}
	if c := got[0]; c.Err == nil || !strings.Contains(c.Err.Error(), "lost, repeated or reordered") {
		t.Errorf("client 0: %+v; want it stopped on the repeated line", c)
	}
}

func TestServerGoneIsAnError(t *testing.T) {
	var version atomic.Value
	version.Store("v1")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens: every connect is refused
	l := start(t, addr, 3, "")
	got, _, err := l.Stop()
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range got {
		if c.Err == nil || !strings.Contains(c.Err.Error(), "refused") {
			t.Errorf("client %d: %+v; want a refused connection", i, c)
		}
	}
}

func TestUsage(t *testing.T) {
	if code := Main(context.Background(), []string{"--clients", "3"}, strings.NewReader(""), &strings.Builder{}, &strings.Builder{}); code != 2 {
		t.Errorf("without --addr: exit %d, want 2", code)
	}
	if _, err := Start(context.Background(), Options{Command: []string{os.Args[0]}}); err == nil {
		t.Error("Start without an address succeeded")
	}
}

func TestParseRejectsUnknownEvents(t *testing.T) {
	clients := make([]Client, 2)
	for _, line := range []string{"seen 2 v1", "seen x v1", "hello 0 v1", "replies 0 many"} {
		if err := parse(line, clients); err == nil {
			t.Errorf("parse(%q) succeeded", line)
		}
	}
	if err := parse("failed 1 reply to line 3: EOF", clients); err != nil || clients[1].Err.Error() != "reply to line 3: EOF" {
		t.Errorf("failed event: %v, client %+v", err, clients[1])
	}
}

// TestCgroupCapsTheClients runs the clients in a cgroup of their own and
// reads back its limits and the CPU they used. It needs root and a
// writable cgroup v2 hierarchy whose cpu controller can be enabled.
func TestCgroupCapsTheClients(t *testing.T) {
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err != nil {
		t.Skipf("/sys/fs/cgroup is not a cgroup v2 hierarchy: %v", err)
	}
	self, err := os.ReadFile("/proc/self/cgroup")
	if err != nil || !strings.HasPrefix(string(self), "0::") {
		t.Skipf("this process is not in a cgroup v2 group alone (/proc/self/cgroup: %q, %v)", self, err)
	}
	parent := filepath.Join("/sys/fs/cgroup", strings.TrimSpace(strings.TrimPrefix(string(self), "0::")))
	if os.Geteuid() != 0 || writeFile(parent, "cgroup.subtree_control", "+cpu") != nil {
		// A group with processes of its own cannot delegate controllers
		// (cgroup v2's no-internal-process rule) unless it is the root.
		parent = "/sys/fs/cgroup"
		if os.Geteuid() != 0 || writeFile(parent, "cgroup.subtree_control", "+cpu") != nil {
			t.Skipf("cannot enable the cpu controller below %s (not root, or cgroups not delegated here)", parent)
		}
	}
	group := filepath.Join(parent, fmt.Sprintf("echoload-test-%d", os.Getpid()))
	var version atomic.Value
	version.Store("v1")
	l := start(t, echoServer(t, &version, false), 4, group)
	waitSeen(t, l, 4, 1)
	if max, _ := os.ReadFile(filepath.Join(group, "cpu.max")); strings.TrimSpace(string(max)) != CPUMax {
		t.Errorf("cpu.max %q, want %q", max, CPUMax)
	}
	if w, _ := os.ReadFile(filepath.Join(group, "cpu.weight")); strings.TrimSpace(string(w)) != "1" {
		t.Errorf("cpu.weight %q, want 1", w)
	}
	procs, _ := os.ReadFile(filepath.Join(group, "cgroup.procs"))
	if strings.TrimSpace(string(procs)) != fmt.Sprint(l.cmd.Process.Pid) {
		t.Errorf("cgroup.procs %q, want the load process %d alone", procs, l.cmd.Process.Pid)
	}
	_, use, err := l.Stop()
	if err != nil {
		t.Fatal(err)
	}
	if use.CPU <= 0 {
		t.Errorf("the clients used %v of CPU; want some", use.CPU)
	}
	if _, err := os.Stat(group); !os.IsNotExist(err) {
		t.Errorf("the group %s is still there after Stop: %v", group, err)
	}
}
