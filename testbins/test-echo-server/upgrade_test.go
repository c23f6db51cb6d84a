package main

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"yakimg/testbins/internal/testbin"
	"yakimg/yakiros/handoff"
)

// lineClient talks to the echo server without a break: numbered lines, up
// to 8 unanswered, each batch written in two pieces cut mid-line so that a
// handoff often finds half a line read. It checks that every reply comes
// exactly once and in order, and that replies never go back to an earlier
// instance's version.
type lineClient struct {
	name     string
	conn     *net.TCPConn
	versions []string // what the server may answer with, in upgrade order
	window   chan struct{}
	stop     chan struct{}
	done     chan struct{} // the reader has seen the end

	mu    sync.Mutex
	got   []string // the version of each reply
	last  int      // index in versions of the last reply's version
	sent  int      // lines sent, once stopped
	err   error
	ended bool
}

func dialClient(t *testing.T, addr, name string, versions []string) *lineClient {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &lineClient{name: name, conn: conn.(*net.TCPConn), versions: versions,
		window: make(chan struct{}, 8), stop: make(chan struct{}), done: make(chan struct{})}
	go c.write()
	go c.read()
	return c
}

func (c *lineClient) fail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		c.err = fmt.Errorf("%s: %w", c.name, err)
	}
}

func (c *lineClient) write() {
	for i := 0; ; i += 3 {
		select {
		case <-c.stop:
			c.mu.Lock()
			c.sent = i
			c.mu.Unlock()
			if err := c.conn.CloseWrite(); err != nil {
				c.fail(err)
			}
			return
		default:
		}
		var b []byte
		for j := range 3 {
			c.window <- struct{}{}
			b = fmt.Appendf(b, "%s line %d\n", c.name, i+j)
		}
		cut := 1 + i%(len(b)-1)
		if _, err := c.conn.Write(b[:cut]); err != nil {
			c.fail(fmt.Errorf("write: %w", err))
			return
		}
		time.Sleep(100 * time.Microsecond)
		if _, err := c.conn.Write(b[cut:]); err != nil {
			c.fail(fmt.Errorf("write: %w", err))
			return
		}
		time.Sleep(time.Millisecond)
	}
}

func (c *lineClient) read() {
	defer close(c.done)
	sc := bufio.NewScanner(c.conn)
	for sc.Scan() {
		ver, body, _ := strings.Cut(sc.Text(), " ")
		c.mu.Lock()
		n := len(c.got)
		idx := slices.Index(c.versions, ver)
		var err error
		switch {
		case body != fmt.Sprintf("%s line %d", c.name, n):
			err = fmt.Errorf("reply %d is %q; want %q (a line lost or answered twice)", n, sc.Text(), fmt.Sprintf("%s line %d", c.name, n))
		case idx < 0:
			err = fmt.Errorf("reply %d from version %q; want one of %q", n, ver, c.versions)
		case idx < c.last:
			err = fmt.Errorf("reply %d from %s after %s answered", n, ver, c.versions[c.last])
		}
		c.got = append(c.got, ver)
		c.last = max(c.last, idx)
		c.mu.Unlock()
		if err != nil {
			c.fail(err)
			return
		}
		<-c.window
	}
	if err := sc.Err(); err != nil {
		c.fail(fmt.Errorf("read after %d replies: %w", c.replies(""), err))
	}
	c.mu.Lock()
	c.ended = true
	c.mu.Unlock()
}

// replies counts the replies from version ver ("": all).
func (c *lineClient) replies(ver string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, v := range c.got {
		if ver == "" || v == ver {
			n++
		}
	}
	return n
}

func (c *lineClient) check() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// finish stops the client after the replies to all it sent; it checks that
// every line was answered.
func (c *lineClient) finish(t *testing.T) {
	t.Helper()
	close(c.stop)
	select {
	case <-c.done:
	case <-time.After(20 * time.Second):
		t.Fatalf("%s: no end of the replies 20 s after the last line", c.name)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil && (!c.ended || len(c.got) != c.sent) {
		c.err = fmt.Errorf("%s: %d replies to %d lines", c.name, len(c.got), c.sent)
	}
}

// waitFor polls cond for up to 20 s; it stops early when a client failed.
func waitFor(t *testing.T, what string, clients []*lineClient, cond func(*lineClient) bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		all := true
		for _, c := range clients {
			if err := c.check(); err != nil {
				t.Fatal(err)
			}
			all = all && cond(c)
		}
		if all {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// dialer opens one connection after the other, each for one line, so that
// some arrive while the listener is being handed over.
type dialer struct {
	stop chan struct{}
	done chan struct{}
	n    int
	err  error
}

func startDialer(addr string, versions []string) *dialer {
	d := &dialer{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(d.done)
		for {
			select {
			case <-d.stop:
				return
			default:
			}
			line := fmt.Sprintf("fresh %d", d.n)
			got, err := ask(addr, line)
			ver, body, _ := strings.Cut(got, " ")
			if err == nil && (body != line || !slices.Contains(versions, ver)) {
				err = fmt.Errorf("reply %q; want \"<version> %s\"", got, line)
			}
			if err != nil {
				d.err = fmt.Errorf("connection %d: %w", d.n, err)
				return
			}
			d.n++
		}
	}()
	return d
}

func ask(addr, line string) (string, error) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := fmt.Fprintf(conn, "%s\n", line); err != nil {
		return "", err
	}
	reply, err := bufio.NewReader(conn).ReadString('\n')
	return strings.TrimSuffix(reply, "\n"), err
}

// TestUpgradesKeepEveryLine upgrades the echo server six times, to a new
// build and back, while 16 clients talk without a break and a 17th opens
// connection after connection: no connection fails, no line is lost or
// answered twice, each upgrade's version answers every client, and each
// old instance exits 0 once it has handed over.
func TestUpgradesKeepEveryLine(t *testing.T) {
	builds := map[string]string{"v1": testbin.Build(t), "v2": testbin.BuildPkg(t, ".", "-ldflags=-X main.buildVersion=v2")}
	order := []string{"v2", "v1", "v2", "v2", "v1", "v1"}
	versions := []string{"v1"}
	for i, b := range order {
		versions = append(versions, fmt.Sprintf("%s+%d", b, i+1))
	}
	notify := testbin.NewNotifier(t)
	addr := testbin.FreeAddr(t)
	inst := testbin.StartInstance(t, builds["v1"], notify.Env(), "--listen", addr)
	if got, want := notify.Ready(t, inst.Pid()), "READY=1\nSTATUS=listening on "+addr; got != want {
		t.Errorf("notification %q; want %q", got, want)
	}

	const clients = 16
	var cs []*lineClient
	for i := range clients {
		cs = append(cs, dialClient(t, addr, fmt.Sprintf("c%02d", i), versions))
	}
	fresh := startDialer(addr, versions)
	for i, b := range order {
		marks := map[*lineClient]int{}
		for _, c := range cs {
			marks[c] = c.replies("")
		}
		waitFor(t, "every client to be answered 20 more times", cs, func(c *lineClient) bool { return c.replies("") >= marks[c]+20 })

		next, res, err := inst.Upgrade(t, handoff.DefaultTimeout, builds[b], notify.Env(), "--listen", addr)
		if err != nil {
			t.Fatalf("upgrade %d to %s: %v", i+1, b, err)
		}
		if res.FDs < 1+clients {
			t.Errorf("upgrade %d handed over %d descriptors; want the listener and at least the %d clients", i+1, res.FDs, clients)
		}
		if err := inst.Exit(t); err != nil {
			t.Errorf("old instance after upgrade %d: %v; want exit status 0", i+1, err)
		}
		if !strings.Contains(inst.Output(), "handed over to the new instance") {
			t.Errorf("old instance's log does not say it handed over:\n%s", inst.Output())
		}
		inst = next
		if got, want := notify.Ready(t, inst.Pid()), "READY=1\nSTATUS=listening on "+addr; got != want {
			t.Errorf("new instance's notification %q; want %q", got, want)
		}
		want := versions[i+1]
		waitFor(t, "every client to be answered by "+want, cs, func(c *lineClient) bool { return c.replies(want) > 0 })
		t.Logf("upgrade %d: %s answers; %d descriptors and %d state bytes handed over", i+1, want, res.FDs, res.StateBytes)
	}

	close(fresh.stop)
	<-fresh.done
	if fresh.err != nil {
		t.Error(fresh.err)
	}
	total := 0
	for _, c := range cs {
		c.finish(t)
		if err := c.check(); err != nil {
			t.Error(err)
		}
		total += c.replies("")
	}
	t.Logf("%d clients: %d lines answered exactly once; %d one-line connections", clients, total, fresh.n)
	if err := inst.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := inst.Exit(t); err != nil {
		t.Errorf("last instance after SIGTERM: %v; want exit status 0", err)
	}
}

// TestFailedUpgradesKeepServing tries three upgrades that cannot work and
// then one that does. Each failure is reported to the supervisor as a
// FailedError while the old instance serves its clients on, untouched.
func TestFailedUpgradesKeepServing(t *testing.T) {
	echo := testbin.Build(t)
	cases := []struct {
		name    string
		bin     string
		timeout time.Duration
		exits   bool // the new instance ends by itself
		reason  string
	}{
		{"exits before HELLO", testbin.BuildPkg(t, "yakimg/testbins/test-crash-on-start"), handoff.DefaultTimeout, true, "HELLO"},
		{"refuses the state", testbin.BuildPkg(t, "yakimg/testbins/test-web-server"), handoff.DefaultTimeout, true, "it is test-echo-server's, this is test-web-server"},
		{"never says HELLO", testbin.BuildPkg(t, "yakimg/testbins/test-never-ready"), time.Second, false, "HELLO"},
	}
	versions := []string{"v1", "v1+1"}
	addr := testbin.FreeAddr(t)
	inst := testbin.StartInstance(t, echo, nil, "--listen", addr)
	var cs []*lineClient
	for i := range 4 {
		conn := testbin.Dial(t, addr) // waits until it listens
		conn.Close()
		cs = append(cs, dialClient(t, addr, fmt.Sprintf("c%d", i), versions))
	}
	for _, tc := range cases {
		next, _, err := inst.Upgrade(t, tc.timeout, tc.bin, nil, "--listen", addr)
		var failed *handoff.FailedError
		if !errors.As(err, &failed) || !strings.Contains(failed.Reason, tc.reason) {
			t.Fatalf("%s: upgrade = %v; want a FailedError naming %q", tc.name, err, tc.reason)
		}
		if tc.exits {
			if err := next.Exit(t); err == nil {
				t.Errorf("%s: the new instance exited with status 0; want a failure", tc.name)
			}
		} else if !next.Running() {
			t.Errorf("%s: the new instance ended by itself", tc.name)
		}
		next.Cmd.Process.Kill() // what graph-resolver does to a new instance that failed
		if !inst.Running() {
			t.Fatalf("%s: the old instance ended", tc.name)
		}
		marks := map[*lineClient]int{}
		for _, c := range cs {
			marks[c] = c.replies("v1")
		}
		waitFor(t, "v1 to answer every client again after "+tc.name, cs, func(c *lineClient) bool { return c.replies("v1") >= marks[c]+20 })
		if tc.name == "refuses the state" && !inst.Logged("handoff failed") {
			t.Errorf("%s: the old instance does not log that it resumed:\n%s", tc.name, inst.Output())
		}
	}

	next, _, err := inst.Upgrade(t, handoff.DefaultTimeout, echo, nil, "--listen", addr)
	if err != nil {
		t.Fatalf("upgrade after three failed ones: %v", err)
	}
	if err := inst.Exit(t); err != nil {
		t.Errorf("old instance: %v; want exit status 0", err)
	}
	waitFor(t, "v1+1 to answer every client", cs, func(c *lineClient) bool { return c.replies("v1+1") > 0 })
	for _, c := range cs {
		c.finish(t)
		if err := c.check(); err != nil {
			t.Error(err)
		}
	}
	next.Cmd.Process.Signal(syscall.SIGTERM)
	if err := next.Exit(t); err != nil {
		t.Errorf("after SIGTERM: %v; want exit status 0", err)
	}
}

// TestUpgradeAnswersHalfReadLine hands over a connection whose line the
// old instance has read only in part: the part travels in the state, and
// the new instance answers the whole line, once.
func TestUpgradeAnswersHalfReadLine(t *testing.T) {
	bin := testbin.Build(t)
	addr := testbin.FreeAddr(t)
	inst := testbin.StartInstance(t, bin, nil, "--listen", addr)
	conn := testbin.Dial(t, addr)
	defer conn.Close()
	r := bufio.NewReader(conn)
	// One write: the reply to the first line shows that the server has
	// read the start of the second too.
	fmt.Fprint(conn, "whole\nhalf a ")
	if got, err := r.ReadString('\n'); err != nil || got != "v1 whole\n" {
		t.Fatalf("reply = %q, %v; want %q", got, err, "v1 whole\n")
	}
	next, res, err := inst.Upgrade(t, handoff.DefaultTimeout, bin, nil, "--listen", addr)
	if err != nil {
		t.Fatalf("upgrade: %v", err)
	}
	if err := inst.Exit(t); err != nil {
		t.Errorf("old instance: %v; want exit status 0", err)
	}
	if want := "1 connections (7 bytes read and not answered"; !strings.Contains(inst.Output(), want) {
		t.Errorf("old instance's log lacks %q:\n%s", want, inst.Output())
	}
	fmt.Fprint(conn, "line\nnext\n")
	for _, want := range []string{"v1+1 half a line\n", "v1+1 next\n"} {
		if got, err := r.ReadString('\n'); err != nil || got != want {
			t.Errorf("reply = %q, %v; want %q", got, err, want)
		}
	}
	if res.FDs != 2 {
		t.Errorf("%d descriptors handed over; want the listener and the connection", res.FDs)
	}
	next.Cmd.Process.Signal(syscall.SIGTERM)
	if err := next.Exit(t); err != nil {
		t.Errorf("after SIGTERM: %v; want exit status 0", err)
	}
}
