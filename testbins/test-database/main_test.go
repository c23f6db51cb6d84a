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
)

// bin is the real program, built once by TestMain.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "test-database")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "test-database")
	code := 1
	if b, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, b)
	} else {
		code = m.Run()
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// start runs the program on a free port with its data in dir.
func start(t *testing.T, dir string) (addr string, cmd *exec.Cmd, out *strings.Builder) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr = ln.Addr().String()
	ln.Close()
	out = &strings.Builder{}
	cmd = exec.Command(bin, "--listen", addr, "--data", dir, "--version", "v3")
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return addr, cmd, out
}

// client talks to the server one line at a time.
type client struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func dial(t *testing.T, addr string) *client {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		conn, err := net.Dial("tcp", addr)
		if err == nil {
			conn.SetDeadline(time.Now().Add(20 * time.Second))
			t.Cleanup(func() { conn.Close() })
			return &client{t: t, conn: conn, r: bufio.NewReader(conn)}
		}
		if time.Now().After(deadline) {
			t.Fatalf("dial %s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
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
	b, err := exec.Command(bin, "--listen", "127.0.0.1:0", "--data", dir).CombinedOutput()
	if err == nil || !strings.Contains(string(b), "db.log:2: not a SET record") {
		t.Errorf("corrupt log: %v, output %q; want a failure naming db.log:2", err, b)
	}
}

func TestUnwritableDataDir(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	b, err := exec.Command(bin, "--listen", "127.0.0.1:0", "--data", filepath.Join(file, "db")).CombinedOutput()
	if err == nil || !strings.Contains(string(b), "data directory") {
		t.Errorf("data dir under a file: %v, output %q; want a failure about the data directory", err, b)
	}
}
