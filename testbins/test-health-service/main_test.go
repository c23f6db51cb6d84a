package main

import (
	"bufio"
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

// command sends one line on a control connection and returns the answer.
func command(t *testing.T, r *bufio.Reader, conn net.Conn, line string) string {
	t.Helper()
	if _, err := conn.Write([]byte(line + "\n")); err != nil {
		t.Fatal(err)
	}
	answer, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("%s: %v", line, err)
	}
	return strings.TrimSuffix(answer, "\n")
}

// reports reads notify datagrams until want arrives, failing after 10 s.
func reports(t *testing.T, sock *net.UnixConn, want string) []string {
	t.Helper()
	var seen []string
	buf := make([]byte, 4096)
	sock.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		n, err := sock.Read(buf)
		if err != nil {
			t.Fatalf("waiting for %q on the notify socket: %v (got %q)", want, err, seen)
		}
		seen = append(seen, string(buf[:n]))
		if string(buf[:n]) == want {
			return seen
		}
	}
}

func waitFile(t *testing.T, path, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		data, _ := os.ReadFile(path)
		if string(data) == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s = %q; want %q", path, data, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Each way of switching the health (port, control file) shows in each way
// of observing it (status, the check command, the health file, notify
// reports), and a hung service answers no check and sends no report.
func TestHealthSwitchesAndReports(t *testing.T) {
	bin := testbin.Build(t)
	dir := t.TempDir()
	control, healthFile := filepath.Join(dir, "control"), filepath.Join(dir, "health")
	notifyPath := filepath.Join(dir, "notify.sock")
	sock, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: notifyPath, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	addr, cmd, out := testbin.Start(t, bin, []string{"NOTIFY_SOCKET=" + notifyPath, "WATCHDOG_USEC=100000"},
		"--control-file", control, "--health-file", healthFile)

	if seen := reports(t, sock, "HEALTH=ok"); !strings.HasPrefix(seen[0], "READY=1\nSTATUS=listening on ") {
		t.Errorf("first datagram = %q; want READY=1 and a STATUS= line", seen[0])
	}
	waitFile(t, healthFile, "ok\n")
	conn := testbin.Dial(t, addr)
	defer conn.Close()
	r := bufio.NewReader(conn)
	checkCmd := func() (int, string) {
		out, err := exec.Command(bin, "check", addr).CombinedOutput()
		if exit, ok := err.(*exec.ExitError); ok {
			return exit.ExitCode(), string(out)
		} else if err != nil {
			t.Fatal(err)
		}
		return 0, string(out)
	}
	if got := command(t, r, conn, "status"); got != "healthy" {
		t.Errorf("status = %q; want healthy", got)
	}
	if code, text := checkCmd(); code != 0 || text != "" {
		t.Errorf("check while healthy = %d, %q; want 0 and no output", code, text)
	}

	if got := command(t, r, conn, "unhealthy disk full"); got != "ok unhealthy" {
		t.Errorf("unhealthy = %q", got)
	}
	if got := command(t, r, conn, "status"); got != "unhealthy: disk full" {
		t.Errorf("status = %q; want unhealthy: disk full", got)
	}
	if code, text := checkCmd(); code != 1 || text != "check "+addr+": fail: disk full\n" {
		t.Errorf("check while unhealthy = %d, %q; want 1 and the reason", code, text)
	}
	waitFile(t, healthFile, "fail: disk full\n")
	reports(t, sock, "HEALTH=fail:disk full")

	if err := os.WriteFile(control, []byte("healthy\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFile(t, healthFile, "ok\n")
	if got := command(t, r, conn, "status"); got != "healthy" {
		t.Errorf("status after the control file said healthy = %q", got)
	}

	if got := command(t, r, conn, "hang"); got != "ok hang" {
		t.Errorf("hang = %q", got)
	}
	hung := exec.Command(bin, "check", addr)
	if err := hung.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- hung.Wait() }()
	// Drain reports sent before the hang, then none may come.
	sock.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	buf := make([]byte, 4096)
	for {
		if _, err := sock.Read(buf); err != nil {
			break
		}
	}
	sock.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	if n, err := sock.Read(buf); err == nil {
		t.Errorf("a hung service reported %q", buf[:n])
	}
	select {
	case err := <-done:
		t.Fatalf("check of a hung service returned: %v", err)
	default:
	}
	if got := command(t, r, conn, "healthy"); got != "ok healthy" {
		t.Errorf("healthy = %q", got)
	}
	if err := <-done; err != nil {
		t.Errorf("the check waiting on the hung service: %v; want exit 0 once healthy", err)
	}
	if got := command(t, r, conn, "bogus"); !strings.HasPrefix(got, "error: unknown command \"bogus\"") {
		t.Errorf("bogus = %q; want an error", got)
	}
	// The log is complete once the service has stopped.
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	for _, want := range []string{"test-health-service stopped", "health is now unhealthy: disk full (by control port)", "health is now healthy (by " + control + ")", "health is now hang"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}

func TestCheckUnreachable(t *testing.T) {
	bin := testbin.Build(t)
	out, err := exec.Command(bin, "check", testbin.FreeAddr(t)).CombinedOutput()
	if exit, ok := err.(*exec.ExitError); !ok || exit.ExitCode() != 1 || !strings.Contains(string(out), "connection refused") {
		t.Errorf("check of nothing = %v, %q; want exit 1, connection refused", err, out)
	}
}
