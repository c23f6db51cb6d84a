package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"yakimg/testbins/internal/testbin"
)

func TestEchoManyClients(t *testing.T) {
	addr, cmd, out := testbin.Start(t, testbin.Build(t), nil, "--version", "v7")
	const clients, lines = 20, 50
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for c := range clients {
		conn := testbin.Dial(t, addr)
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
	addr, _, _ := testbin.Start(t, testbin.Build(t), nil)
	conn := testbin.Dial(t, addr)
	defer conn.Close()
	fmt.Fprint(conn, "no newline")
	conn.(*net.TCPConn).CloseWrite()
	r := bufio.NewReader(conn)
	got, err := r.ReadString('\n')
	if err != nil || got != "v1 no newline\n" {
		t.Errorf("reply = %q, %v; want %q", got, err, "v1 no newline\n")
	}
}

func TestBadVersion(t *testing.T) {
	b, err := exec.Command(testbin.Build(t), "--listen", "127.0.0.1:0", "--version", "v1 beta").CombinedOutput()
	if err == nil || !strings.Contains(string(b), `version "v1 beta": want one word`) {
		t.Errorf("--version with a space: %v, output %q; want a failure naming it", err, b)
	}
}

func TestListenFailure(t *testing.T) {
	b, err := exec.Command(testbin.Build(t), "--listen", "256.0.0.1:1").CombinedOutput()
	if err == nil || !strings.Contains(string(b), "listen 256.0.0.1:1") {
		t.Errorf("bad --listen: %v, output %q; want a failure naming the address", err, b)
	}
}

// TestNotifyReady receives the readiness datagram on a real unix datagram
// socket, as graph-resolver does: one message with READY=1 and the status,
// sent by the server's own process (the kernel-checked sender pid
// graph-resolver attributes it by), and only once the port accepts.
func TestNotifyReady(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify.sock")
	ln, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	raw, err := ln.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_PASSCRED, 1)
	}); err != nil || serr != nil {
		t.Fatalf("SO_PASSCRED: %v, %v", err, serr)
	}

	addr, cmd, out := testbin.Start(t, testbin.Build(t), []string{"NOTIFY_SOCKET=" + sock})
	ln.SetReadDeadline(time.Now().Add(20 * time.Second))
	buf, oob := make([]byte, 4096), make([]byte, syscall.CmsgSpace(syscall.SizeofUcred))
	n, oobn, _, _, err := ln.ReadMsgUnix(buf, oob)
	if err != nil {
		t.Fatalf("no datagram on %s: %v\n%s", sock, err, out)
	}
	if got, want := string(buf[:n]), "READY=1\nSTATUS=listening on "+addr; got != want {
		t.Errorf("datagram = %q; want %q", got, want)
	}
	msgs, err := syscall.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		t.Fatalf("control messages %v, %v; want the sender's credentials", msgs, err)
	}
	cred, err := syscall.ParseUnixCredentials(&msgs[0])
	if err != nil {
		t.Fatal(err)
	}
	if int(cred.Pid) != cmd.Process.Pid {
		t.Errorf("sender pid %d; want the server, pid %d", cred.Pid, cmd.Process.Pid)
	}

	// Ready means listening: the first attempt connects and is answered.
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("after READY=1: %v", err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	fmt.Fprintln(conn, "hello")
	if got, err := bufio.NewReader(conn).ReadString('\n'); err != nil || got != "v1 hello\n" {
		t.Errorf("reply after READY=1 = %q, %v; want %q", got, err, "v1 hello\n")
	}
	// The server logs after sending READY=1, and its output reaches out
	// through a pipe: the line may come a moment after the datagram.
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(out.String(), "told "+sock+" it is ready"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Errorf("stdout does not say it notified %s:\n%s", sock, out)
			break
		}
	}
}

func TestNotifySocketMissing(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "absent.sock")
	cmd := exec.Command(testbin.Build(t), "--listen", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock)
	b, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(b), "notify "+sock) {
		t.Errorf("NOTIFY_SOCKET=%s (absent): %v, output %q; want a failure naming it", sock, err, b)
	}
}
