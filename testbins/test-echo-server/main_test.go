package main

import (
	"bufio"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// build compiles the real program.
func build(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "test-echo-server")
	if b, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	return bin
}

// startServer builds the real program and runs it on a free port.
func startServer(t *testing.T, args ...string) (addr string, cmd *exec.Cmd, out *strings.Builder) {
	t.Helper()
	bin := build(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr = ln.Addr().String()
	ln.Close()
	out = &strings.Builder{}
	cmd = exec.Command(bin, append([]string{"--listen", addr}, args...)...)
	cmd.Stdout = out
	cmd.Stderr = out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return addr, cmd, out
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		conn, err := net.Dial("tcp", addr)
		if err == nil {
			conn.SetDeadline(time.Now().Add(20 * time.Second))
			return conn
		}
		if time.Now().After(deadline) {
			t.Fatalf("dial %s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestEchoManyClients(t *testing.T) {
	addr, cmd, out := startServer(t, "--version", "v7")
	const clients, lines = 20, 50
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for c := range clients {
		conn := dial(t, addr)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer conn.Close()
			r := bufio.NewReader(conn)
			for i := range lines {
				msg := fmt.Sprintf("client %d line %d", c, i)
				fmt.Fprintf(conn, "%s\r\n", msg)
				got, err := r.ReadString('\n')
				if err != nil || got != "v7 "+msg+"\n" {
					errs <- fmt.Errorf("client %d: reply %q, %v; want %q", c, got, err, "v7 "+msg+"\n")
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("after SIGTERM: %v; want exit 0", err)
	}
	log := out.String()
	for _, want := range []string{"test-echo-server v7 listening on " + addr, "connected", "disconnected", "stopped"} {
		if !strings.Contains(log, want) {
			t.Errorf("stdout lacks %q:\n%s", want, log)
		}
	}
}

func TestDefaultVersionAndLastLineWithoutNewline(t *testing.T) {
	addr, _, _ := startServer(t)
	conn := dial(t, addr)
	defer conn.Close()
	fmt.Fprint(conn, "no newline")
	conn.(*net.TCPConn).CloseWrite()
	r := bufio.NewReader(conn)
	got, err := r.ReadString('\n')
	if err != nil || got != "v1 no newline\n" {
		t.Errorf("reply = %q, %v; want %q", got, err, "v1 no newline\n")
	}
}

func TestListenFailure(t *testing.T) {
	b, err := exec.Command(build(t), "--listen", "256.0.0.1:1").CombinedOutput()
	if err == nil || !strings.Contains(string(b), "listen 256.0.0.1:1") {
		t.Errorf("bad --listen: %v, output %q; want a failure naming the address", err, b)
	}
}
