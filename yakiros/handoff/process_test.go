package handoff

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// The test binary doubles as the service under upgrade: with roleEnv=echo,
// TestMain runs echoMain instead of the tests.
const (
	roleEnv    = "HANDOFF_TEST_ROLE"
	versionEnv = "HANDOFF_TEST_VERSION" // the word before every reply: v1, v2
	logEnv     = "HANDOFF_TEST_LOG"     // the file a freshly started instance logs each request to
	crashEnv   = "HANDOFF_TEST_CRASH"   // "1": exit right after receiving a handoff, without ACK
)

func TestMain(m *testing.M) {
	if os.Getenv(roleEnv) == "echo" {
		if err := echoMain(); err != nil {
			fmt.Fprintln(os.Stderr, "echo:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// echo is a line echo service: each request line is logged to a file and
// answered with "<version> <line>". It hands everything over on upgrade,
// including the bytes it has read but not answered.
type echo struct {
	version   string
	ln        *net.TCPListener
	log       *os.File
	mu        sync.Mutex
	conns     map[string]*echoConn
	next      int
	accepting sync.WaitGroup
	serving   sync.WaitGroup
}

type echoConn struct {
	name string
	conn *net.TCPConn
	left []byte // read but not answered when paused
}

func echoMain() error {
	e := &echo{version: os.Getenv(versionEnv), conns: map[string]*echoConn{}}
	set, err := Inherited()
	if err != nil {
		return err
	}
	if set != nil {
		if os.Getenv(crashEnv) == "1" {
			os.Exit(3)
		}
		if err := e.adopt(set); err != nil {
			set.Abort(err)
			return err
		}
		if err := set.Ack(); err != nil {
			return err
		}
	} else {
		e.ln, err = net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			return err
		}
		e.log, err = os.OpenFile(os.Getenv(logEnv), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return err
		}
		fmt.Printf("ADDR %s\n", e.ln.Addr())
	}
	e.run()
	return Serve(context.Background(), e.prepare)
}

func (e *echo) adopt(set *Set) error {
	ln, err := set.Listener("tcp")
	if err != nil {
		return err
	}
	e.ln = ln.(*net.TCPListener)
	if e.log, err = set.File("log"); err != nil {
		return err
	}
	var left map[string][]byte
	if err := json.Unmarshal(set.State(), &left); err != nil {
		return fmt.Errorf("state: %w", err)
	}
	conns, err := set.Conns()
	if err != nil {
		return err
	}
	for _, c := range conns {
		e.conns[c.Name] = &echoConn{name: c.Name, conn: c.Conn.(*net.TCPConn), left: left[c.Name]}
	}
	return nil
}

func (e *echo) run() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.accepting.Add(1)
	go e.accept()
	for _, c := range e.conns {
		e.serving.Add(1)
		go e.serve(c)
	}
}

func (e *echo) accept() {
	defer e.accepting.Done()
	for {
		c, err := e.ln.AcceptTCP()
		if err != nil {
			return // paused for a handoff
		}
		e.mu.Lock()
		ec := &echoConn{name: fmt.Sprintf("%s-%d", e.version, e.next), conn: c}
		e.next++
		e.conns[ec.name] = ec
		e.serving.Add(1)
		go e.serve(ec)
		e.mu.Unlock()
	}
}

func (e *echo) serve(c *echoConn) {
	defer e.serving.Done()
	pre := bytes.NewReader(c.left)
	r := bufio.NewReader(io.MultiReader(pre, c.conn))
	for {
		line, err := r.ReadString('\n')
		if errors.Is(err, os.ErrDeadlineExceeded) {
			// Paused: keep what was read, in order, for whoever serves next.
			buffered, _ := r.Peek(r.Buffered())
			rest, _ := io.ReadAll(pre)
			c.left = slices.Concat([]byte(line), buffered, rest)
			return
		}
		if err == nil {
			fmt.Fprintf(e.log, "%s %s", e.version, line)
			_, err = c.conn.Write([]byte(e.version + " " + line))
		}
		if err != nil {
			e.mu.Lock()
			delete(e.conns, c.name)
			e.mu.Unlock()
			c.conn.Close()
			return
		}
	}
}

func (e *echo) prepare(*Request) (*Bundle, error) {
	e.ln.SetDeadline(past)
	e.accepting.Wait()
	e.mu.Lock()
	for _, c := range e.conns {
		c.conn.SetReadDeadline(past)
	}
	e.mu.Unlock()
	e.serving.Wait()
	b := &Bundle{
		Listeners: []Listener{{Name: "tcp", Listener: e.ln}},
		Files:     []File{{Name: "log", File: e.log}},
	}
	left := map[string][]byte{}
	for _, name := range slices.Sorted(maps.Keys(e.conns)) {
		c := e.conns[name]
		b.Conns = append(b.Conns, Conn{Name: name, Conn: c.conn})
		left[name] = c.left
	}
	var err error
	if b.State, err = json.Marshal(left); err != nil {
		return nil, err
	}
	b.Resume = func(error) {
		e.ln.SetDeadline(time.Time{})
		for _, c := range e.conns {
			c.conn.SetReadDeadline(time.Time{})
		}
		e.run()
	}
	return b, nil
}

// client talks to the echo service the whole time: it sends numbered lines,
// several in flight and split across writes, and checks that every reply
// comes exactly once, in order, and that v1 never answers after v2.
type client struct {
	name  string
	conn  *net.TCPConn
	slots chan struct{} // requests in flight
	stop  chan struct{}
	done  chan struct{} // the reader saw the end
	mu    sync.Mutex
	vers  []string // the version that answered each request
	sent  int
	err   error
}

func dialClient(t *testing.T, addr, name string) *client {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	cl := &client{name: name, conn: c.(*net.TCPConn), slots: make(chan struct{}, 6), stop: make(chan struct{}), done: make(chan struct{})}
	go cl.write()
	go cl.read()
	return cl
}

func (c *client) fail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		c.err = err
	}
}

func (c *client) write() {
	for i := 0; ; {
		select {
		case <-c.stop:
			c.mu.Lock()
			c.sent = i
			c.mu.Unlock()
			c.conn.CloseWrite()
			return
		default:
		}
		var b []byte
		for range 3 {
			c.slots <- struct{}{}
			b = fmt.Appendf(b, "%s-%d\n", c.name, i)
			i++
		}
		// Split mid-line, so that a pause often finds half a request read.
		half := len(b)/2 + 1
		_, err := c.conn.Write(b[:half])
		if err == nil {
			time.Sleep(200 * time.Microsecond)
			_, err = c.conn.Write(b[half:])
		}
		if err != nil {
			c.fail(fmt.Errorf("%s: write: %w", c.name, err))
			return
		}
		time.Sleep(time.Millisecond)
	}
}

func (c *client) read() {
	defer close(c.done)
	sc := bufio.NewScanner(c.conn)
	for sc.Scan() {
		ver, body, _ := strings.Cut(sc.Text(), " ")
		c.mu.Lock()
		n := len(c.vers)
		var err error
		switch {
		case body != fmt.Sprintf("%s-%d", c.name, n):
			err = fmt.Errorf("%s: reply %d is %q; want %s-%d (lost or duplicated bytes)", c.name, n, sc.Text(), c.name, n)
		case ver != "v1" && ver != "v2":
			err = fmt.Errorf("%s: reply %d from %q", c.name, n, ver)
		case ver == "v1" && n > 0 && c.vers[n-1] == "v2":
			err = fmt.Errorf("%s: reply %d from v1 after v2 answered", c.name, n)
		}
		c.vers = append(c.vers, ver)
		c.mu.Unlock()
		if err != nil {
			c.fail(err)
			return
		}
		<-c.slots
	}
	if err := sc.Err(); err != nil {
		c.fail(fmt.Errorf("%s: read after %d replies: %w", c.name, c.count(""), err))
	}
}

// count is the number of replies from ver ("": all).
func (c *client) count(ver string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, v := range c.vers {
		if ver == "" || v == ver {
			n++
		}
	}
	return n
}

func (c *client) check() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// waitFor polls cond until it holds or a client failed.
func waitFor(t *testing.T, what string, clients []*client, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		for _, c := range clients {
			if err := c.check(); err != nil {
				t.Fatal(err)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func allHave(clients []*client, ver string, n func(*client) int) func() bool {
	return func() bool {
		for _, c := range clients {
			if c.count(ver) < n(c) {
				return false
			}
		}
		return true
	}
}

// echoCmd is the echo service as a process with files as descriptors 3, 4...
func echoCmd(t *testing.T, version string, files []*os.File, env ...string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), append([]string{roleEnv + "=echo", versionEnv + "=" + version}, env...)...)
	cmd.ExtraFiles = files
	stderr := &bytes.Buffer{}
	cmd.Stderr = stderr
	return cmd, stderr
}

// upgradeTo starts a new echo instance as the successor of the instance
// behind ctl and returns it with the supervisor's outcome.
func upgradeTo(t *testing.T, ctl *Control, version string, env ...string) (*exec.Cmd, Result, error) {
	t.Helper()
	next, svc, err := NewControl()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { next.Close() })
	u, err := ctl.Upgrade(DefaultTimeout)
	if err != nil {
		t.Fatal(err)
	}
	cmd, stderr := echoCmd(t, version, []*os.File{svc, u.New},
		append(env, fmt.Sprintf("%s=%d", EnvUpgradeFD, UpgradeFD), fmt.Sprintf("%s=%d", EnvHandoffFD, HandoffFD))...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	svc.Close()
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("%s instance stderr:\n%s", version, stderr)
		}
	})
	res, err := u.Wait(waitCtx(t))
	return cmd, res, err
}

// ask sends one line on a new connection and returns the reply.
func ask(t *testing.T, addr, line string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(line + "\n")); err != nil {
		t.Fatal(err)
	}
	reply, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("ask %q: %v", line, err)
	}
	return strings.TrimSuffix(reply, "\n")
}

// TestUpgradeBetweenProcesses upgrades a running echo service (a process)
// while four clients keep talking to it: first to a new instance that dies
// mid-handoff, then to one that takes over.
func TestUpgradeBetweenProcesses(t *testing.T) {
	logPath := filepath.Join(t.TempDir(), "echo.log")
	ctl, svc, err := NewControl()
	if err != nil {
		t.Fatal(err)
	}
	defer ctl.Close()
	old, oldStderr := echoCmd(t, "v1", []*os.File{svc}, logEnv+"="+logPath, fmt.Sprintf("%s=%d", EnvUpgradeFD, UpgradeFD))
	out, err := old.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := old.Start(); err != nil {
		t.Fatal(err)
	}
	svc.Close()
	t.Cleanup(func() {
		old.Process.Kill()
		old.Wait()
		if t.Failed() {
			t.Logf("v1 instance stderr:\n%s", oldStderr)
		}
	})
	first, err := bufio.NewReader(out).ReadString('\n')
	addr, ok := strings.CutPrefix(strings.TrimSpace(first), "ADDR ")
	if err != nil || !ok {
		t.Fatalf("v1 instance said %q, %v; want its address", first, err)
	}

	var clients []*client
	for i := range 4 {
		clients = append(clients, dialClient(t, addr, fmt.Sprintf("c%d", i)))
	}
	waitFor(t, "v1 replies", clients, allHave(clients, "v1", func(*client) int { return 3 }))
	// Half a request, which v1 reads and cannot answer: it must reach v2
	// in the state blob.
	half, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer half.Close()
	if _, err := half.Write([]byte("half-")); err != nil {
		t.Fatal(err)
	}

	// A new instance that receives everything and dies before ACK: the old
	// one keeps serving with every descriptor.
	crashed, _, err := upgradeTo(t, ctl, "v2", crashEnv+"=1")
	var failed *FailedError
	if !errors.As(err, &failed) {
		t.Fatalf("upgrade to a crashing instance: Wait() error %v; want FailedError", err)
	}
	t.Logf("crashed upgrade: %v", err)
	if err := crashed.Wait(); err == nil || crashed.ProcessState.ExitCode() != 3 {
		t.Fatalf("crashing instance exited with %v; want status 3", err)
	}
	before := map[*client]int{}
	for _, c := range clients {
		before[c] = c.count("v1")
	}
	waitFor(t, "v1 replies after the failed upgrade", clients, allHave(clients, "v1", func(c *client) int { return before[c] + 3 }))
	if got := ask(t, addr, "probe"); got != "v1 probe" {
		t.Errorf("new connection after the failed upgrade: reply %q; want %q", got, "v1 probe")
	}

	// The real upgrade.
	_, res, err := upgradeTo(t, ctl, "v2")
	if err != nil {
		t.Fatalf("upgrade: %v", err)
	}
	if res.FDs != 7 {
		t.Errorf("Result.FDs = %d; want 7 (listener, 5 connections, log)", res.FDs)
	}
	t.Logf("upgrade: %d descriptors, %d state bytes, %v", res.FDs, res.StateBytes, res.Duration)
	if err := old.Wait(); err != nil {
		t.Errorf("v1 instance after handing over: %v; want exit 0", err)
	}
	waitFor(t, "v2 replies", clients, allHave(clients, "v2", func(*client) int { return 3 }))
	if got := ask(t, addr, "late"); got != "v2 late" {
		t.Errorf("new connection after the upgrade: reply %q; want %q", got, "v2 late")
	}
	if _, err := half.Write([]byte("line\n")); err != nil {
		t.Fatal(err)
	}
	if got, err := bufio.NewReader(half).ReadString('\n'); got != "v2 half-line\n" {
		t.Errorf("request split across the upgrade: reply %q, %v; want %q", got, err, "v2 half-line\n")
	}

	for _, c := range clients {
		close(c.stop)
	}
	for _, c := range clients {
		select {
		case <-c.done:
		case <-time.After(wait):
			t.Fatalf("%s: no end of replies", c.name)
		}
		if err := c.check(); err != nil {
			t.Error(err)
		}
		if got := c.count(""); got != c.sent {
			t.Errorf("%s: %d replies to %d requests", c.name, got, c.sent)
		}
	}

	// Both instances wrote the log through the one handed-over file: every
	// request appears once, in order, nothing overwritten.
	data, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	for _, c := range clients {
		var got []string
		for _, l := range lines {
			if _, body, _ := strings.Cut(l, " "); strings.HasPrefix(body, c.name+"-") {
				got = append(got, body)
			}
		}
		for i, body := range got {
			if body != fmt.Sprintf("%s-%d", c.name, i) {
				t.Errorf("log line %d of %s is %q; want %s-%d", i, c.name, body, c.name, i)
				break
			}
		}
		if len(got) != c.sent {
			t.Errorf("log has %d lines of %s; want %d", len(got), c.name, c.sent)
		}
	}
	for _, want := range []string{"v1 probe", "v2 late", "v2 half-line"} {
		if !slices.Contains(lines, want) {
			t.Errorf("log lacks %q", want)
		}
	}
}
