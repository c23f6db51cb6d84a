package main

import (
	"bufio"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"yakimg/testbins/internal/testbin"
)

// TestCommands runs the real service on a Unix socket and drives each
// command once.
func TestCommands(t *testing.T) {
	bin := testbin.Build(t)
	sock := filepath.Join(t.TempDir(), "ctl.sock")
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("needs sleep(1) for the fork command")
	}
	cmd := exec.Command(bin, "--listen", sock, "--child", sleep+" 60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	var c net.Conn
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c, err = net.Dial("unix", sock); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	ask := func(line string) string {
		t.Helper()
		if _, err := c.Write([]byte(line + "\n")); err != nil {
			t.Fatal(err)
		}
		reply, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		return strings.TrimSuffix(reply, "\n")
	}
	var v View
	if err := json.Unmarshal([]byte(ask("info")), &v); err != nil || v.Pid != cmd.Process.Pid || v.Interfaces["lo"] != true {
		t.Errorf("info = %+v, %v; want pid %d and lo up", v, err, cmd.Process.Pid)
	}
	name := "isolated-test-" + filepath.Base(t.TempDir())
	if got := ask("touch " + name); got != "ok" {
		t.Errorf("touch = %q", got)
	}
	defer os.Remove(filepath.Join("/tmp", name))
	if _, err := os.Stat(filepath.Join("/tmp", name)); err != nil {
		t.Error(err)
	}
	if got := ask("alloc 4"); got != "ok allocated 4 MiB" {
		t.Errorf("alloc = %q", got)
	}
	if got := ask("fork 3"); got != "ok forked 3 of 3" {
		t.Errorf("fork = %q", got)
	}
	if got := ask("spin 0"); got != "ok spun 0 s" {
		t.Errorf("spin = %q", got)
	}
	if got := ask("fly"); !strings.HasPrefix(got, "error unknown command") {
		t.Errorf("unknown command = %q", got)
	}
}
