package checkpoint

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// reaper plays PID 1's loop: it reaps every child and hands exits to p.
func reaper(t *testing.T, p *Procs) {
	stop := make(chan struct{})
	done := make(chan struct{})
	t.Cleanup(func() { close(stop); <-done })
	go func() {
		defer close(done)
		for {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if err == nil && pid > 0 {
				if !p.Exited(pid, ws) {
					t.Errorf("exit of pid %d not claimed", pid)
				}
				continue
			}
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
}

// A process run through Procs gets its exit from the reaper, its output
// into the file, and is killed when the context ends.
func TestProcsRun(t *testing.T) {
	p := NewProcs()
	reaper(t, p)
	out := filepath.Join(t.TempDir(), "out")
	if err := p.run(context.Background(), "/bin/sh", []string{"-c", "echo hi; echo err >&2"}, out, nil); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(out); string(b) != "hi\nerr\n" {
		t.Errorf("output %q", b)
	}
	if err := p.run(context.Background(), "/bin/sh", []string{"-c", "exit 3"}, "", nil); err == nil || !strings.Contains(err.Error(), "exit status 3") {
		t.Errorf("exit 3: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := p.run(ctx, "/bin/sh", []string{"-c", "sleep 30"}, "", nil); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Errorf("timed out run: %v", err)
	}
	// A fake criu through CRIU: the version is parsed from its output.
	fake := filepath.Join(t.TempDir(), "criu")
	os.WriteFile(fake, []byte("#!/bin/sh\necho 'Version: 3.17.1'\n"), 0o755)
	v, err := CRIU{Path: fake, Procs: p}.Version(context.Background())
	if err != nil || v != (Version{3, 17, 1}) {
		t.Errorf("version through Procs = %v, %v", v, err)
	}
}
