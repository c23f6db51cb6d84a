package kexec

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func sampleManifest() Manifest {
	return Manifest{CreationTime: 1767225600, OldKernelVersion: "6.1.0-50-cloud-amd64",
		NewKernelPath: "/boot/vmlinuz-6.1.0-50-cloud-amd64", InitrdPath: "/boot/initramfs.cpio.zst",
		Cmdline: "console=ttyS0 panic=-1", BootID: "boot-1", LastPid: 812,
		Entries: []Entry{{ComponentName: "test-checkpoint-service", CheckpointID: "0001767225600000000000",
			CheckpointPath: "/checkpoint/test-checkpoint-service/0001767225600000000000", OriginalPid: 301, Timestamp: 1767225600}},
		Fresh: []Skipped{{ComponentName: "test-health-service", Reason: "uses the notify socket"}}}
}

func TestManifestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	m := sampleManifest()
	if err := WriteManifest(dir, m); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, ManifestFile))
	if err != nil {
		t.Fatal(err)
	}
	// The reference's fields come first, in its order.
	var at []int
	for _, k := range []string{"version", "entry_count", "creation_time", "old_kernel_version", "new_kernel_path", "initrd_path", "cmdline", "entries"} {
		at = append(at, strings.Index(string(raw), `"`+k+`": `))
	}
	if !slices.IsSorted(at) || at[0] < 0 {
		t.Errorf("reference fields missing or out of order (offsets %v):\n%s", at, raw)
	}
	got, err := ReadManifest(dir, "boot-2")
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != ManifestVersion || got.EntryCount != 1 || got.Entries[0] != m.Entries[0] || got.LastPid != 812 ||
		got.Fresh[0] != m.Fresh[0] || got.Cmdline != m.Cmdline {
		t.Errorf("read back %+v", got)
	}
	if _, err := ReadManifest(dir, "boot-1"); !errors.Is(err, ErrStaleManifest) {
		t.Errorf("manifest of the running boot: %v; want ErrStaleManifest", err)
	}
	if err := RemoveManifest(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadManifest(dir, "boot-2"); !errors.Is(err, ErrNoManifest) {
		t.Errorf("after RemoveManifest: %v; want ErrNoManifest", err)
	}
	if err := RemoveManifest(dir); err != nil {
		t.Errorf("removing a missing manifest: %v", err)
	}
}

func TestManifestRefused(t *testing.T) {
	good := sampleManifest()
	good.Version, good.EntryCount = ManifestVersion, 1
	b, err := good.Encode()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, data string
		want       error
		detail     string
	}{
		{"truncated", string(b[:len(b)/2]), ErrBadManifest, "unexpected end of JSON input"},
		{"cut after the last brace", string(b[:len(b)-3]), ErrBadManifest, "unexpected end"},
		{"empty", "", ErrBadManifest, "unexpected end"},
		{"newer format", strings.Replace(string(b), `"version": 1`, `"version": 2`, 1), ErrNewerManifest, "version 2, this YakirOS reads version 1"},
		{"newer format with new fields", `{"version": 7, "services": {}}`, ErrNewerManifest, "version 7"},
		{"no version", `{"entry_count": 0, "entries": []}`, ErrBadManifest, "no version"},
		{"version 0", strings.Replace(string(b), `"version": 1`, `"version": 0`, 1), ErrBadManifest, "version 0"},
		{"unknown field", strings.Replace(string(b), `"cmdline"`, `"kommandline"`, 1), ErrBadManifest, "unknown field"},
		{"count mismatch", strings.Replace(string(b), `"entry_count": 1`, `"entry_count": 2`, 1), ErrBadManifest, "entry_count 2 but 1 entries"},
		{"trailing data", string(b) + "{}", ErrBadManifest, "after top-level value"},
		{"entry without pid", strings.Replace(string(b), `"original_pid": 301`, `"original_pid": 0`, 1), ErrBadManifest, "entry 0 lacks"},
	} {
		_, err := DecodeManifest([]byte(tc.data))
		if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.detail) {
			t.Errorf("%s: DecodeManifest = %v; want %v saying %q", tc.name, err, tc.want, tc.detail)
		}
	}
	if _, err := DecodeManifest(b); err != nil {
		t.Errorf("the good manifest: %v", err)
	}
}

// fakeProc is a /proc with just ns_last_pid.
func fakeProc(t *testing.T, last int) string {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "sys/kernel"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "sys/kernel/ns_last_pid"), fmt.Appendf(nil, "%d\n", last), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestReservePids(t *testing.T) {
	proc := fakeProc(t, 120)
	if cur, err := ReservePids(proc, 800); err != nil || cur != 120 {
		t.Fatalf("ReservePids = %d, %v", cur, err)
	}
	if last, err := LastPid(proc); err != nil || last != 800 {
		t.Errorf("after reserving: last pid %d, %v; want 800", last, err)
	}
	// Never backwards: pids above are in use already.
	if cur, err := ReservePids(proc, 500); err != nil || cur != 800 {
		t.Errorf("ReservePids(500) = %d, %v", cur, err)
	}
	if last, _ := LastPid(proc); last != 800 {
		t.Errorf("the counter moved back to %d", last)
	}
}

// fakeDumper writes size bytes of "images" per service into the state dir
// the way the resolver's criu dump does, and records what it was asked.
type fakeDumper struct {
	dir     string
	size    int
	failFor string // a service whose dump fails (not for lack of room)
	dumped  []string
}

func (f *fakeDumper) dump(_ context.Context, s Service) (Dumped, error) {
	if s.Name == f.failFor {
		return Dumped{}, errors.New("criu dump: exit status 1: External socket is used")
	}
	path := filepath.Join(f.dir, s.Name, "0000000000000000001")
	if err := os.MkdirAll(path, 0o700); err != nil {
		return Dumped{}, err
	}
	err := os.WriteFile(filepath.Join(path, "pages-1.img"), make([]byte, f.size), 0o600)
	if err != nil {
		os.RemoveAll(path)
		return Dumped{}, fmt.Errorf("criu dump: %w", err)
	}
	f.dumped = append(f.dumped, s.Name)
	return Dumped{Name: s.Name, Pid: s.Pid, ID: "0000000000000000001", Path: path, Timestamp: 1767225600}, nil
}

func plan(dir string, f *fakeDumper, loaded *bool) Plan {
	return Plan{
		StateDir: dir, Kernel: "/boot/vmlinuz", Cmdline: "console=ttyS0", OldKernel: "6.1.0", BootID: "boot-1",
		Services: []Service{{Name: "db", Pid: 300}, {Name: "notify", Pid: 301, Skip: "uses the notify socket"}, {Name: "web", Pid: 302}},
		Dump:     f.dump,
		Verify: func(d Dumped) error {
			_, err := os.Stat(filepath.Join(d.Path, "pages-1.img"))
			return err
		},
		Load: func(kernel, initrd, cmdline string) error {
			*loaded = true
			return nil
		},
	}
}

func TestPrepare(t *testing.T) {
	dir := t.TempDir()
	f := &fakeDumper{dir: dir, size: 4096, failFor: "web"}
	var loaded bool
	p := plan(dir, f, &loaded)
	p.ProcDir = fakeProc(t, 4242)
	out, err := Prepare(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	if !loaded || len(out.Dumped) != 1 || out.Dumped[0].Name != "db" {
		t.Fatalf("loaded %v, dumped %+v", loaded, out.Dumped)
	}
	m, err := ReadManifest(dir, "boot-2")
	if err != nil {
		t.Fatal(err)
	}
	if m.EntryCount != 1 || m.Entries[0].ComponentName != "db" || m.Entries[0].OriginalPid != 300 || m.LastPid != 4242 || m.BootID != "boot-1" {
		t.Errorf("manifest %+v", m)
	}
	if len(m.Fresh) != 2 || m.Fresh[0].ComponentName != "notify" || m.Fresh[1].ComponentName != "web" ||
		!strings.Contains(m.Fresh[1].Reason, "External socket") {
		t.Errorf("fresh %+v; want notify (skipped) and web (dump failed)", m.Fresh)
	}
	info, err := os.ReadFile(filepath.Join(dir, PreKexecInfoFile))
	if err != nil || !strings.Contains(string(info), "old_kernel_version=6.1.0\n") || !strings.Contains(string(info), "component_count=3\n") {
		t.Errorf("pre-kexec info %q, %v", info, err)
	}
}

func TestPrepareLoadFailureRemovesEverything(t *testing.T) {
	dir := t.TempDir()
	f := &fakeDumper{dir: dir, size: 4096}
	var loaded bool
	p := plan(dir, f, &loaded)
	p.ProcDir = fakeProc(t, 10)
	p.Load = func(string, string, string) error { return unix.EPERM }
	out, err := Prepare(context.Background(), p)
	if !errors.Is(err, unix.EPERM) || !strings.HasPrefix(err.Error(), "load-kernel: ") {
		t.Fatalf("Prepare = %v; want the load's EPERM in phase load-kernel", err)
	}
	if len(out.Dumped) != 2 {
		t.Errorf("dumped %+v; want both services returned for resuming", out.Dumped)
	}
	if _, err := os.Stat(filepath.Join(dir, ManifestFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("manifest left behind: %v", err)
	}
	for _, d := range out.Dumped {
		if _, err := os.Stat(d.Path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("checkpoint %s left behind: %v", d.Path, err)
		}
	}
}

// smallFS mounts a tmpfs of size bytes (root only).
func smallFS(t *testing.T, size int) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: mounts a small tmpfs to fill")
	}
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d", size)); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	return dir
}

// A state directory that fills up during the checkpoints abandons the
// upgrade before the kernel is loaded: nothing is left behind and the
// services already dumped are returned to be resumed.
func TestPrepareFullDuringCheckpoint(t *testing.T) {
	dir := smallFS(t, 3<<20)
	f := &fakeDumper{dir: dir, size: 2 << 20}
	var loaded bool
	p := plan(dir, f, &loaded)
	p.ProcDir = fakeProc(t, 10)
	out, err := Prepare(context.Background(), p)
	if !errors.Is(err, ErrNoSpace) || !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), "checkpoint: 'web'") {
		t.Fatalf("Prepare = %v; want ErrNoSpace (ENOSPC) at web's checkpoint", err)
	}
	if loaded {
		t.Error("the kernel was loaded")
	}
	if len(out.Dumped) != 1 || out.Dumped[0].Name != "db" {
		t.Errorf("dumped %+v; want db, to be resumed", out.Dumped)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.IsDir() {
			if sub, _ := os.ReadDir(filepath.Join(dir, e.Name())); len(sub) > 0 {
				t.Errorf("checkpoint left in %s: %v", e.Name(), sub)
			}
		} else if e.Name() != PreKexecInfoFile {
			t.Errorf("left behind: %s", e.Name())
		}
	}
}

// Too little room for what the services hold is refused before any dump.
func TestPrepareFullBeforeCheckpoint(t *testing.T) {
	dir := smallFS(t, 2<<20)
	f := &fakeDumper{dir: dir, size: 4096}
	var loaded bool
	p := plan(dir, f, &loaded)
	p.NeedBytes = 8 << 20
	_, err := Prepare(context.Background(), p)
	if !errors.Is(err, ErrNoSpace) || !strings.Contains(err.Error(), "checkpoints need about 9 MiB") {
		t.Fatalf("Prepare = %v; want ErrNoSpace before the dumps", err)
	}
	if len(f.dumped) != 0 || loaded {
		t.Errorf("dumped %v, loaded %v; want nothing", f.dumped, loaded)
	}
}

// Resume continues a stopped process group, as an abandoned upgrade does.
func TestResume(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		t.Skipf("no sleep here: %v", err)
	}
	defer cmd.Process.Kill()
	pid := cmd.Process.Pid
	if err := unix.Kill(pid, unix.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	waitState(t, pid, "T")
	Resume([]Dumped{{Name: "sleep", Pid: pid}})
	waitState(t, pid, "S")
}

// waitState waits for /proc/<pid>/stat to show state.
func waitState(t *testing.T, pid int, state string) {
	t.Helper()
	var got string
	for range 200 {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		if f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:]); len(f) > 0 {
			if got = f[0]; got == state {
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("pid %d is in state %s; want %s", pid, got, state)
}
