package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"yakimg/testbins/internal/testbin"
)

// get sends one GET on conn and reads the whole response.
func get(t *testing.T, conn net.Conn, r *bufio.Reader, path string) (*http.Response, string) {
	t.Helper()
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: test\r\n\r\n", path)
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("GET %s: body: %v", path, err)
	}
	return resp, string(body)
}

func TestVersionHealthAndKeepAlive(t *testing.T) {
	files := t.TempDir()
	addr, cmd, out := testbin.Start(t, testbin.Build(t), nil, "--version", "v9", "--files", files)
	conn := testbin.Dial(t, addr)
	defer conn.Close()
	r := bufio.NewReader(conn)

	// Every request on the same connection: the server keeps it open.
	resp, body := get(t, conn, r, "/")
	if resp.StatusCode != 200 || body != "test-web-server v9\n" || resp.Header.Get("X-Version") != "v9" || resp.Close {
		t.Errorf("GET / = %d %q (X-Version %q, close %v); want 200, the version, keep-alive", resp.StatusCode, body, resp.Header.Get("X-Version"), resp.Close)
	}
	if resp, body := get(t, conn, r, "/health"); resp.StatusCode != 200 || body != "ok\n" {
		t.Errorf("GET /health = %d %q; want 200 ok", resp.StatusCode, body)
	}
	if err := os.Remove(files); err != nil {
		t.Fatal(err)
	}
	if resp, body := get(t, conn, r, "/health"); resp.StatusCode != 503 || !strings.Contains(body, files) {
		t.Errorf("GET /health without %s = %d %q; want 503 naming it", files, resp.StatusCode, body)
	}
	if resp, _ := get(t, conn, r, "/nope"); resp.StatusCode != 404 {
		t.Errorf("GET /nope = %d; want 404", resp.StatusCode)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("after SIGTERM: %v; want exit 0", err)
	}
	log := out.String()
	for _, want := range []string{"test-web-server v9 listening on " + addr, "GET / -> 200", "GET /health -> 503", "stopped"} {
		if !strings.Contains(log, want) {
			t.Errorf("stdout lacks %q:\n%s", want, log)
		}
	}
}

func TestListenFailure(t *testing.T) {
	addr, _, _ := testbin.Start(t, testbin.Build(t), nil)
	conn := testbin.Dial(t, addr) // the port is now taken
	conn.Close()
	b, err := exec.Command(testbin.Build(t), "--listen", addr).CombinedOutput()
	if err == nil || !strings.Contains(string(b), "listen "+addr) {
		t.Errorf("second server on %s: %v, output %q; want a failure naming the address", addr, err, b)
	}
}
