package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"yakimg/testbins/internal/testbin"
	"yakimg/yakiros/handoff"
)

// TestProtocol sends the server raw requests and reads its answers with
// net/http: pipelining, HEAD, bodies, HTTP/1.0, and the errors after which
// it closes the connection.
func TestProtocol(t *testing.T) {
	addr, _, _ := testbin.Start(t, testbin.Build(t), nil, "--files", t.TempDir())
	for _, tc := range []struct {
		name  string
		raw   string
		codes []int
		close bool // the server closes after the last answer
	}{
		{"pipelined", "GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /health HTTP/1.1\r\nHost: a\r\n\r\nHEAD / HTTP/1.1\r\nHost: a\r\n\r\n", []int{200, 200, 200}, false},
		{"body skipped", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nGET / HTTP/GET /nope HTTP/1.1\r\nHost: a\r\n\r\n", []int{405, 404}, false},
		{"close", "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", []int{200}, true},
		{"HTTP/1.0", "GET / HTTP/1.0\r\n\r\n", []int{200}, true},
		{"HTTP/1.0 keep-alive", "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /health HTTP/1.0\r\n\r\n", []int{200, 200}, true},
		{"bad request", "GET / HTTP/1.1\r\nHost: a\r\n\r\nNONSENSE\r\n\r\n", []int{200, 400}, true},
		{"expect without body", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n", []int{405}, true},
	} {
		conn := testbin.Dial(t, addr)
		if _, err := io.WriteString(conn, tc.raw); err != nil {
			t.Fatal(err)
		}
		r := bufio.NewReader(conn)
		for i, code := range tc.codes {
			method := http.MethodGet
			if strings.Contains(tc.name, "pipelined") && i == 2 {
				method = http.MethodHead
			}
			resp, err := http.ReadResponse(r, &http.Request{Method: method})
			if err != nil {
				t.Fatalf("%s: answer %d: %v", tc.name, i, err)
			}
			body, err := io.ReadAll(resp.Body)
			if err != nil || resp.StatusCode != code || resp.ProtoMinor != 1 || (method == http.MethodGet && int64(len(body)) != resp.ContentLength) {
				t.Errorf("%s: answer %d = %s %q (%v, length %d); want %d", tc.name, i, resp.Status, body, err, resp.ContentLength, code)
			}
			if method == http.MethodHead && (len(body) != 0 || resp.ContentLength != int64(len("test-web-server v1\n"))) {
				t.Errorf("%s: HEAD answered %q with length %d; want no body and GET's length", tc.name, body, resp.ContentLength)
			}
			if last := i == len(tc.codes)-1; resp.Close != (last && tc.close) {
				t.Errorf("%s: answer %d says close=%v", tc.name, i, resp.Close)
			}
		}
		// An open connection shows nothing in 200 ms; a closed one shows
		// its end (within the 20 s of the dial deadline).
		if !tc.close {
			conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		}
		_, err := r.ReadByte()
		if closed := errors.Is(err, io.EOF); closed != tc.close {
			t.Errorf("%s: after the answers read = %v; want closed %v", tc.name, err, tc.close)
		}
		conn.Close()
	}
}

// webClient keeps one keep-alive connection busy: GET /, GET /health and
// POST / with a body, up to four in flight, each written in two pieces so
// that a handoff often finds a request read in part. It checks each answer
// in order, and that GET / never goes back to an earlier instance.
type webClient struct {
	name     string
	conn     *net.TCPConn
	versions []string
	inflight chan int // the kind of each request sent and not answered, in order
	stop     chan struct{}
	done     chan struct{}

	mu    sync.Mutex
	got   []string // the version of each GET / answer
	n     int      // answers
	sent  int
	ended bool
	err   error
}

func startWebClient(t *testing.T, addr, name string, versions []string) *webClient {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &webClient{name: name, conn: conn.(*net.TCPConn), versions: versions,
		inflight: make(chan int, 4), stop: make(chan struct{}), done: make(chan struct{})}
	go c.write()
	go c.read()
	return c
}

func (c *webClient) fail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		c.err = fmt.Errorf("%s: %w", c.name, err)
	}
}

// rawRequest is the i-th request, of kind i%3.
func rawRequest(i int) string {
	switch i % 3 {
	case 0:
		return "GET / HTTP/1.1\r\nHost: test\r\n\r\n"
	case 1:
		return "GET /health HTTP/1.1\r\nHost: test\r\nUser-Agent: web-client\r\n\r\n"
	}
	body := strings.Repeat("b", i%500)
	return fmt.Sprintf("POST / HTTP/1.1\r\nHost: test\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
}

func (c *webClient) write() {
	for i := 0; ; i++ {
		select {
		case <-c.stop:
			c.mu.Lock()
			c.sent = i
			c.mu.Unlock()
			if err := c.conn.CloseWrite(); err != nil {
				c.fail(err)
			}
			return
		case c.inflight <- i:
		}
		req := rawRequest(i)
		cut := 1 + i*7%(len(req)-1)
		if _, err := io.WriteString(c.conn, req[:cut]); err != nil {
			c.fail(fmt.Errorf("write: %w", err))
			return
		}
		time.Sleep(100 * time.Microsecond)
		if _, err := io.WriteString(c.conn, req[cut:]); err != nil {
			c.fail(fmt.Errorf("write: %w", err))
			return
		}
	}
}

func (c *webClient) read() {
	defer close(c.done)
	r := bufio.NewReader(c.conn)
	last := 0
	for {
		if _, err := r.Peek(1); errors.Is(err, io.EOF) {
			c.mu.Lock()
			c.ended = true
			c.mu.Unlock()
			return
		}
		resp, err := http.ReadResponse(r, nil)
		if err != nil {
			c.fail(fmt.Errorf("answer %d: %w", c.answers(), err))
			return
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			c.fail(fmt.Errorf("answer %d: body: %w", c.answers(), err))
			return
		}
		i := <-c.inflight
		ver, isRoot := strings.CutPrefix(string(body), "test-web-server ")
		ver = strings.TrimSuffix(ver, "\n")
		idx := slices.Index(c.versions, ver)
		switch {
		case resp.Close:
			err = errors.New("the server closes the connection")
		case i%3 == 0 && (resp.StatusCode != 200 || !isRoot || idx < 0 || resp.Header.Get("X-Version") != ver):
			err = fmt.Errorf("GET / answered %s %q (X-Version %q); want 200 and one of %q", resp.Status, body, resp.Header.Get("X-Version"), c.versions)
		case i%3 == 0 && idx < last:
			err = fmt.Errorf("%s answered GET / after %s", ver, c.versions[last])
		case i%3 == 1 && (resp.StatusCode != 200 || string(body) != "ok\n"):
			err = fmt.Errorf("GET /health answered %s %q; want 200 ok", resp.Status, body)
		case i%3 == 2 && resp.StatusCode != 405:
			err = fmt.Errorf("POST / answered %s; want 405", resp.Status)
		}
		if err != nil {
			c.fail(fmt.Errorf("answer %d: %w (a request lost or answered twice?)", i, err))
			return
		}
		c.mu.Lock()
		c.n++
		if i%3 == 0 {
			c.got = append(c.got, ver)
			last = idx
		}
		c.mu.Unlock()
	}
}

func (c *webClient) answers() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// from says whether ver has answered a GET /.
func (c *webClient) from(ver string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Contains(c.got, ver)
}

func (c *webClient) check() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *webClient) finish(t *testing.T) {
	t.Helper()
	close(c.stop)
	select {
	case <-c.done:
	case <-time.After(20 * time.Second):
		t.Fatalf("%s: no end of the answers 20 s after the last request", c.name)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil && (!c.ended || c.n != c.sent) {
		c.err = fmt.Errorf("%s: %d answers to %d requests", c.name, c.n, c.sent)
	}
}

func waitFor(t *testing.T, what string, clients []*webClient, cond func(*webClient) bool) {
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

// TestUpgradesKeepConnections upgrades the server four times while 8
// clients send requests without a break and 4 keep idle keep-alive
// connections: every request is answered once, in order, no connection is
// closed, each upgrade's version answers on every connection, busy or idle,
// and each old instance exits 0.
func TestUpgradesKeepConnections(t *testing.T) {
	builds := map[string]string{"v1": testbin.Build(t), "v2": testbin.BuildPkg(t, ".", "-ldflags=-X main.buildVersion=v2")}
	order := []string{"v2", "v1", "v1", "v2"}
	versions := []string{"v1"}
	for i, b := range order {
		versions = append(versions, fmt.Sprintf("%s+%d", b, i+1))
	}
	files := t.TempDir()
	addr := testbin.FreeAddr(t)
	notify := testbin.NewNotifier(t)
	args := []string{"--listen", addr, "--files", files}
	inst := testbin.StartInstance(t, builds["v1"], notify.Env(), args...)
	notify.Ready(t, inst.Pid())

	const busy, idle = 8, 4
	var cs []*webClient
	for i := range busy {
		cs = append(cs, startWebClient(t, addr, fmt.Sprintf("busy%d", i), versions))
	}
	var idles []net.Conn
	for range idle {
		idles = append(idles, testbin.Dial(t, addr))
	}
	getOn := func(conn net.Conn, want string) {
		t.Helper()
		fmt.Fprint(conn, "GET / HTTP/1.1\r\nHost: test\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("idle connection: %v", err)
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil || string(body) != "test-web-server "+want+"\n" || resp.Close {
			t.Errorf("idle connection: GET / = %q, %v, close %v; want %s, kept open", body, err, resp.Close, want)
		}
	}
	for _, conn := range idles {
		getOn(conn, "v1")
	}
	for i, b := range order {
		marks := map[*webClient]int{}
		for _, c := range cs {
			marks[c] = c.answers()
		}
		waitFor(t, "20 more answers on every busy connection", cs, func(c *webClient) bool { return c.answers() >= marks[c]+20 })
		next, res, err := inst.Upgrade(t, handoff.DefaultTimeout, builds[b], notify.Env(), args...)
		if err != nil {
			t.Fatalf("upgrade %d to %s: %v", i+1, b, err)
		}
		if want := 1 + busy + idle; res.FDs != want {
			t.Errorf("upgrade %d handed over %d descriptors; want %d: the listener and every connection", i+1, res.FDs, want)
		}
		if err := inst.Exit(t); err != nil {
			t.Errorf("old instance after upgrade %d: %v; want exit status 0", i+1, err)
		}
		inst = next
		notify.Ready(t, inst.Pid())
		want := versions[i+1]
		waitFor(t, want+" to answer every busy connection", cs, func(c *webClient) bool { return c.from(want) })
		for _, conn := range idles {
			getOn(conn, want)
		}
		t.Logf("upgrade %d: %s answers; %d descriptors, %d state bytes handed over", i+1, want, res.FDs, res.StateBytes)
	}
	total := 0
	for _, c := range cs {
		c.finish(t)
		if err := c.check(); err != nil {
			t.Error(err)
		}
		total += c.answers()
	}
	t.Logf("%d busy connections: %d requests answered exactly once", busy, total)
	inst.Cmd.Process.Signal(syscall.SIGTERM)
	if err := inst.Exit(t); err != nil {
		t.Errorf("last instance after SIGTERM: %v; want exit status 0", err)
	}
}

// TestFailedUpgradeKeepsServing: a new instance that dies before it takes
// anything over costs the clients nothing.
func TestFailedUpgradeKeepsServing(t *testing.T) {
	web := testbin.Build(t)
	crash := testbin.BuildPkg(t, "yakimg/testbins/test-crash-on-start")
	addr := testbin.FreeAddr(t)
	args := []string{"--listen", addr, "--files", t.TempDir()}
	inst := testbin.StartInstance(t, web, nil, args...)
	testbin.Dial(t, addr).Close()
	cs := []*webClient{startWebClient(t, addr, "a", []string{"v1"}), startWebClient(t, addr, "b", []string{"v1"})}
	waitFor(t, "answers", cs, func(c *webClient) bool { return c.answers() >= 20 })
	_, _, err := inst.Upgrade(t, handoff.DefaultTimeout, crash, nil, args...)
	var failed *handoff.FailedError
	if !errors.As(err, &failed) {
		t.Fatalf("upgrade to a program that crashes = %v; want a FailedError", err)
	}
	marks := map[*webClient]int{}
	for _, c := range cs {
		marks[c] = c.answers()
	}
	waitFor(t, "20 more answers", cs, func(c *webClient) bool { return c.answers() >= marks[c]+20 })
	for _, c := range cs {
		c.finish(t)
		if err := c.check(); err != nil {
			t.Error(err)
		}
	}
	if !inst.Running() {
		t.Error("the old instance ended")
	}
}

// TestUpgradeAnswersHalfReadRequest hands over a connection whose request
// the old instance has read only in part: the new instance reads it whole
// from the state and the socket, and answers it once.
func TestUpgradeAnswersHalfReadRequest(t *testing.T) {
	bin := testbin.Build(t)
	addr := testbin.FreeAddr(t)
	args := []string{"--listen", addr, "--files", t.TempDir()}
	inst := testbin.StartInstance(t, bin, nil, args...)
	conn := testbin.Dial(t, addr)
	defer conn.Close()
	r := bufio.NewReader(conn)
	get := func(want string) {
		t.Helper()
		resp, err := http.ReadResponse(r, nil)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil || string(body) != "test-web-server "+want+"\n" {
			t.Errorf("GET / = %q, %v; want %s", body, err, want)
		}
	}
	// One write: the answer to the first request shows that the server
	// has read the start of the second too.
	fmt.Fprint(conn, "GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHo")
	get("v1")
	next, _, err := inst.Upgrade(t, handoff.DefaultTimeout, bin, nil, args...)
	if err != nil {
		t.Fatalf("upgrade: %v", err)
	}
	if err := inst.Exit(t); err != nil {
		t.Errorf("old instance: %v; want exit status 0", err)
	}
	if want := "1 connections (18 bytes read and not answered"; !strings.Contains(inst.Output(), want) {
		t.Errorf("old instance's log lacks %q:\n%s", want, inst.Output())
	}
	fmt.Fprint(conn, "st: a\r\n\r\n")
	get("v1+1")
	next.Cmd.Process.Signal(syscall.SIGTERM)
	if err := next.Exit(t); err != nil {
		t.Errorf("after SIGTERM: %v; want exit status 0", err)
	}
}
