package control

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// When run as the helper client (see TestPeerCredentials), the test binary
// makes one request and prints the response.
func TestMain(m *testing.M) {
	if path := os.Getenv("CONTROL_TEST_CLIENT"); path != "" {
		resp, err := Do(context.Background(), path, Request{Command: "status"})
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		json.NewEncoder(os.Stdout).Encode(resp)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// serve starts a server whose "loop" answers with answer.
func serve(t *testing.T, path string, answer func(Request) Response) *Server {
	t.Helper()
	calls := make(chan *Call)
	srv, err := Listen(path, calls, t.Logf)
	if err != nil {
		t.Fatalf("Listen(%s): %v", path, err)
	}
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case c := <-calls:
				if c.PeerPid != os.Getpid() {
					c.Reply(Fail(fmt.Sprintf("PeerPid = %d; want the test's pid %d", c.PeerPid, os.Getpid())))
					continue
				}
				c.Reply(answer(c.Request))
			case <-stop:
				return
			}
		}
	}()
	t.Cleanup(func() {
		srv.Close()
		close(stop)
	})
	return srv
}

func echo(req Request) Response {
	switch req.Command {
	case "fail":
		return Fail("it failed")
	case "fail-with":
		return FailWith("it found problems", "2 problems\n", map[string]int{"problems": 2})
	}
	return OK(req.Command+" "+strings.Join(req.Args, ","), map[string]any{"args": req.Args})
}

func TestRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ctl.sock")
	serve(t, path, echo)

	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode = %v; want a socket with mode 0600", fi.Mode())
	}

	resp, err := Do(context.Background(), path, Request{Command: "hello", Args: []string{"a", "b"}})
	if err != nil {
		t.Fatal(err)
	}
	if !resp.OK || resp.Text != "hello a,b" || string(resp.Data) != `{"args":["a","b"]}` || resp.Error != "" {
		t.Errorf("Do(hello a b) = %+v", resp)
	}
	resp, err = Do(context.Background(), path, Request{Command: "fail"})
	if err != nil || resp.OK || resp.Error != "it failed" || string(resp.Data) != "null" {
		t.Errorf("Do(fail) = %+v, %v; want ok=false error \"it failed\"", resp, err)
	}
	resp, err = Do(context.Background(), path, Request{Command: "fail-with"})
	if err != nil || resp.OK || resp.Error != "it found problems" || resp.Text != "2 problems\n" || string(resp.Data) != `{"problems":2}` {
		t.Errorf("Do(fail-with) = %+v, %v; want ok=false with error, text and data", resp, err)
	}
}

func TestLargeReply(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ctl.sock")
	big := strings.Repeat("component-with-a-long-name ACTIVE\n", 64<<10)
	serve(t, path, func(Request) Response { return OK(big, nil) })
	resp, err := Do(context.Background(), path, Request{Command: "status"})
	if err != nil || resp.Text != big {
		t.Errorf("Do with a %d-byte reply: got %d bytes, err %v", len(big), len(resp.Text), err)
	}
}

func TestBadRequests(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ctl.sock")
	serve(t, path, echo)
	for _, req := range []string{"status\n", `{"command":"status","bogus":1}`, `{"args":["x"]}`, "null"} {
		conn, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(conn, req)
		conn.(*net.UnixConn).CloseWrite()
		var resp Response
		err = json.NewDecoder(conn).Decode(&resp)
		conn.Close()
		if err != nil || resp.OK || !strings.HasPrefix(resp.Error, "bad request: ") {
			t.Errorf("request %q: response %+v, %v; want ok=false, bad request", req, resp, err)
		}
	}
}

// A request larger than the limit is refused once the limit is read; the
// server neither reads nor buffers the rest.
func TestHugeRequest(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ctl.sock")
	serve(t, path, echo)
	conn, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(4 * Timeout))
	go func() {
		io.WriteString(conn, `{"command":"`)
		// The server stops reading and closes: the write fails then.
		conn.Write([]byte(strings.Repeat("a", 10<<20)))
	}()
	var resp Response
	if err := json.NewDecoder(conn).Decode(&resp); err != nil || resp.OK ||
		!strings.HasPrefix(resp.Error, "bad request: incomplete request (at most 65536 bytes of JSON)") {
		t.Errorf("10 MB request: response %+v, %v; want ok=false, bad request", resp, err)
	}
}

// A client that connects and says nothing neither blocks others nor holds
// its connection past Timeout.
func TestSilentClient(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ctl.sock")
	serve(t, path, echo)
	silent, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	if resp, err := Do(context.Background(), path, Request{Command: "status"}); err != nil || !resp.OK {
		t.Fatalf("Do while another client is silent = %+v, %v", resp, err)
	}
	silent.SetReadDeadline(time.Now().Add(4 * Timeout))
	data, err := io.ReadAll(silent)
	if err != nil {
		t.Fatalf("silent client: %v (the server never closed the connection)", err)
	}
	var resp Response
	if json.Unmarshal(data, &resp) != nil || resp.OK || !strings.HasPrefix(resp.Error, "bad request") {
		t.Errorf("silent client got %q; want a bad-request reply when its deadline passed", data)
	}
}

func TestListenRefusesLiveServer(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ctl.sock")
	serve(t, path, echo)
	if srv, err := Listen(path, make(chan *Call), t.Logf); err == nil {
		srv.Close()
		t.Fatal("second Listen on a live socket succeeded")
	}
	if resp, err := Do(context.Background(), path, Request{Command: "still"}); err != nil || resp.Text != "still " {
		t.Errorf("first server after a refused second Listen: %+v, %v", resp, err)
	}
}

func TestListenReplacesStaleSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ctl.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	serve(t, path, echo)
	if resp, err := Do(context.Background(), path, Request{Command: "x"}); err != nil || !resp.OK {
		t.Errorf("Do after replacing a stale socket = %+v, %v", resp, err)
	}
}

func TestListenKeepsOtherFiles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "precious")
	if err := os.WriteFile(path, []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	if srv, err := Listen(path, make(chan *Call), t.Logf); err == nil {
		srv.Close()
		t.Fatal("Listen on a regular file succeeded")
	}
	if data, err := os.ReadFile(path); err != nil || string(data) != "data" {
		t.Errorf("regular file after a refused Listen: %q, %v", data, err)
	}
}

func TestCloseRemovesSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ctl.sock")
	srv, err := Listen(path, make(chan *Call), t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("socket still exists after Close: %v", err)
	}
	if _, err := Do(context.Background(), path, Request{Command: "x"}); err == nil {
		t.Error("Do after Close succeeded")
	}
}

// A client of another uid is refused even when the file mode lets it in.
func TestPeerCredentials(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: runs a client as another uid")
	}
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "ctl.sock")
	serve(t, path, echo)
	if err := os.Chmod(path, 0o666); err != nil {
		t.Fatal(err)
	}
	self, err := os.ReadFile("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	client := filepath.Join(dir, "client")
	if err := os.WriteFile(client, self, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(client)
	cmd.Env = append(os.Environ(), "CONTROL_TEST_CLIENT="+path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("client as uid 65534: %v\n%s", err, out)
	}
	var resp Response
	if err := json.Unmarshal(out, &resp); err != nil {
		t.Fatalf("client output %q: %v", out, err)
	}
	if resp.OK || resp.Error != "permission denied: uid 65534 may not use the control socket" {
		t.Errorf("response to uid 65534 = %+v; want permission denied", resp)
	}
}

func TestSocketPath(t *testing.T) {
	t.Setenv("GRAPHCTL_SOCKET", "")
	if got := SocketPath(); got != DefaultSocket {
		t.Errorf("SocketPath() without GRAPHCTL_SOCKET = %q; want %q", got, DefaultSocket)
	}
	t.Setenv("GRAPHCTL_SOCKET", "/tmp/x.sock")
	if got := SocketPath(); got != "/tmp/x.sock" {
		t.Errorf("SocketPath() with GRAPHCTL_SOCKET = %q", got)
	}
}
