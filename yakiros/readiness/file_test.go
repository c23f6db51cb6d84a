package readiness

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"yakimg/yakiros/config"
)

// waitArmed waits until the Manager's inotify instance watches dir, as the
// kernel shows it in /proc/self/fdinfo.
func waitArmed(t *testing.T, m *Manager, dir string) {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(dir, &st); err != nil {
		t.Fatal(err)
	}
	var fd uintptr
	m.files.raw.Control(func(f uintptr) { fd = f })
	want := fmt.Sprintf(" ino:%x ", st.Ino)
	waitFor(t, "an inotify watch on "+dir, func() bool {
		data, err := os.ReadFile(fmt.Sprintf("/proc/self/fdinfo/%d", fd))
		return err == nil && strings.Contains(string(data), want)
	})
}

func TestFileCreatedLater(t *testing.T) {
	m, _, _ := setup(t)
	dir := t.TempDir()
	// The file's directory does not exist yet: the service creates it.
	m.Watch("web", 7, config.Readiness{Method: config.ReadyFile, File: dir + "/a/b/ready", Timeout: time.Minute})
	waitArmed(t, m, dir)
	if err := os.MkdirAll(dir+"/a/b", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir+"/a/b/ready", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if ev, _ := outcome(t, m, "web"); !ev.Ready || ev.Pid != 7 {
		t.Errorf("outcome = %+v; want ready for pid 7", ev)
	}
	if m.Check("web") {
		t.Error("Check(ready watch) = true; want false")
	}
}

func TestFileRenamedIntoPlace(t *testing.T) {
	m, _, _ := setup(t)
	dir := t.TempDir()
	m.Watch("web", 7, config.Readiness{Method: config.ReadyFile, File: dir + "/ready"})
	waitArmed(t, m, dir)
	if err := os.WriteFile(dir+"/ready.tmp", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(dir+"/ready.tmp", dir+"/ready"); err != nil {
		t.Fatal(err)
	}
	if ev, _ := outcome(t, m, "web"); !ev.Ready {
		t.Errorf("outcome = %+v; want ready", ev)
	}
}

func TestFileDirectoryRemovedAndRecreated(t *testing.T) {
	m, _, _ := setup(t)
	dir := t.TempDir()
	sub := dir + "/sub"
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	m.Watch("web", 7, config.Readiness{Method: config.ReadyFile, File: sub + "/ready"})
	waitArmed(t, m, sub)
	// The watch must move up to dir, then down to the new sub.
	if err := os.Remove(sub); err != nil {
		t.Fatal(err)
	}
	waitArmed(t, m, dir)
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(sub+"/ready", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if ev, _ := outcome(t, m, "web"); !ev.Ready {
		t.Errorf("outcome = %+v; want ready", ev)
	}
}

func TestFileExistingCounts(t *testing.T) {
	m, _, _ := setup(t)
	path := t.TempDir() + "/ready"
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	m.Watch("web", 7, config.Readiness{Method: config.ReadyFile, File: path})
	if ev, _ := outcome(t, m, "web"); !ev.Ready {
		t.Errorf("outcome = %+v; want ready", ev)
	}
}

func TestPrepareRemovesStaleFile(t *testing.T) {
	m, _, _ := setup(t)
	path := t.TempDir() + "/ready"
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Prepare(config.Readiness{Method: config.ReadyCommand, File: path}); err != nil {
		t.Fatalf("Prepare(command): %v", err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("Prepare(command) touched %s: %v", path, err)
	}
	cfg := config.Readiness{Method: config.ReadyFile, File: path, Timeout: 300 * time.Millisecond}
	for range 2 { // the second time there is nothing to remove
		if err := Prepare(cfg); err != nil {
			t.Fatalf("Prepare(%+v): %v", cfg, err)
		}
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("after Prepare, stat %s: %v; want it gone", path, err)
	}
	// Nothing creates the file again, so the watch times out, once.
	m.Watch("web", 7, cfg)
	ev, _ := outcome(t, m, "web")
	if !errors.Is(ev.Err, ErrTimeout) || ev.Err.Error() != "readiness timeout after 300ms" {
		t.Errorf("outcome = %+v; want readiness timeout after 300ms", ev)
	}
	if m.Check("web") {
		t.Error("Check(timed-out watch) = true; want false")
	}
	if evs := m.Take(); len(evs) != 0 {
		t.Errorf("events after the timeout: %+v; want none", evs)
	}
}

func TestPrepareFailsOnDirectory(t *testing.T) {
	path := t.TempDir()
	if err := os.WriteFile(path+"/x", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	err := Prepare(config.Readiness{Method: config.ReadyFile, File: path})
	if err == nil || !strings.HasPrefix(err.Error(), "remove stale "+path+": ") {
		t.Errorf("Prepare(non-empty directory) = %v; want remove stale %s: ...", err, path)
	}
}
