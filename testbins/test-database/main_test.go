package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"yakimg/testbins/internal/testbin"
)

// start runs the real program on a free port with its data in dir and the
// extra arguments.
func start(t *testing.T, dir string, extra ...string) (addr string, cmd *exec.Cmd, out *testbin.Output) {
	t.Helper()
	return testbin.Start(t, testbin.Build(t), nil, append([]string{"--data", dir, "--version", "v3"}, extra...)...)
}

// client talks to the server one line at a time.
type client struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func dial(t *testing.T, addr string) *client {
	t.Helper()
	conn := testbin.Dial(t, addr)
	t.Cleanup(func() { conn.Close() })
	return &client{t: t, conn: conn, r: bufio.NewReader(conn)}
}

func (c *client) ask(req, want string) {
	c.t.Helper()
	fmt.Fprintf(c.conn, "%s\r\n", req)
	got, err := c.r.ReadString('\n')
	if err != nil || got != want+"\n" {
		c.t.Errorf("%q → %q, %v; want %q", req, got, err, want)
	}
}

func stop(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("after SIGTERM: %v; want exit 0", err)
	}
}

func TestSetGetSurvivesRestart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "db") // created by the server
	addr, cmd, out := start(t, dir)
	c := dial(t, addr)
	c.ask("PING", "PONG v3")
	c.ask("GET colour", "NOT_FOUND")
	c.ask("SET colour dark blue", "OK")
	c.ask("SET n 1", "OK")
	c.ask("SET n 2", "OK")
	c.ask("GET colour", "VALUE dark blue")
	c.ask("GET n", "VALUE 2")
	c.ask("SET lonely", "ERR usage: SET <key> <value>")
	c.ask("GET", "ERR usage: GET <key>")
	c.ask("GET a b", "ERR usage: GET <key>")
	c.ask("DROP everything", `ERR unknown command "DROP" (SET, GET, PING)`)
	stop(t, cmd)
	for _, want := range []string{"loaded 0 keys", "test-database v3 listening on " + addr, "stopped"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}

	addr, cmd, out = start(t, dir)
	c = dial(t, addr)
	c.ask("GET colour", "VALUE dark blue")
	c.ask("GET n", "VALUE 2")
	stop(t, cmd)
	if !strings.Contains(out.String(), "loaded 2 keys") {
		t.Errorf("restart log lacks %q:\n%s", "loaded 2 keys", out)
	}
}

func TestCorruptLogIsRefused(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "db.log"), []byte("SET a 1\nDEL a\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	b, err := exec.Command(testbin.Build(t), "--listen", "127.0.0.1:0", "--data", dir).CombinedOutput()
	if err == nil || !strings.Contains(string(b), "db.log:2: not a SET record") {
		t.Errorf("corrupt log: %v, output %q; want a failure naming db.log:2", err, b)
	}
}

func TestUnwritableDataDir(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	b, err := exec.Command(testbin.Build(t), "--listen", "127.0.0.1:0", "--data", filepath.Join(file, "db")).CombinedOutput()
	if err == nil || !strings.Contains(string(b), "data directory") {
		t.Errorf("data dir under a file: %v, output %q; want a failure about the data directory", err, b)
	}
}

// TestReadyFile waits for the ready file as graph-resolver does, then checks
// what its existence promises: the log was replayed and the port answers at
// the first attempt. Nothing else is left beside it.
func TestReadyFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "db.log"), []byte("SET k before the restart\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	runDir := t.TempDir()
	ready := filepath.Join(runDir, "test-database.ready")
	addr, cmd, out := start(t, dir, "--ready-file", ready)
	var data []byte
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var err error
		if data, err = os.ReadFile(ready); err == nil {
			break
		}
		if !os.IsNotExist(err) || time.Now().After(deadline) {
			t.Fatalf("%s: %v\n%s", ready, err, out)
		}
	}
	if want := fmt.Sprintf("listening on %s (pid %d)\n", addr, cmd.Process.Pid); string(data) != want {
		t.Errorf("%s holds %q; want %q", ready, data, want)
	}
	if names, err := os.ReadDir(runDir); err != nil || len(names) != 1 {
		t.Errorf("%s holds %v, %v; want only the ready file", runDir, names, err)
	}

	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("once %s exists: %v", ready, err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	c := &client{t: t, conn: conn, r: bufio.NewReader(conn)}
	c.ask("GET k", "VALUE before the restart")
	stop(t, cmd)
	if !strings.Contains(out.String(), "created "+ready) {
		t.Errorf("stdout does not say it created %s:\n%s", ready, out)
	}
}

func TestReadyFileUnwritable(t *testing.T) {
	ready := filepath.Join(t.TempDir(), "missing", "test-database.ready")
	b, err := exec.Command(testbin.Build(t), "--listen", "127.0.0.1:0", "--data", t.TempDir(), "--ready-file", ready).CombinedOutput()
	if err == nil || !strings.Contains(string(b), "ready file") {
		t.Errorf("--ready-file in a missing directory: %v, output %q; want a failure about the ready file", err, b)
	}
}
