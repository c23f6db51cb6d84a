package stage1

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"yakimg/suites/report"
)

func needRoot(t *testing.T, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: " + why)
	}
}

func TestMainRefusesOutsidePID1(t *testing.T) {
	var stderr bytes.Buffer
	if got := Main(context.Background(), nil, nil, io.Discard, &stderr); got != 2 {
		t.Errorf("Main outside PID 1 = %d; want 2", got)
	}
	if !strings.Contains(stderr.String(), "PID 1") {
		t.Errorf("Main outside PID 1 says %q; want it to name PID 1", stderr.String())
	}
}

func TestSentinelMainRefuses(t *testing.T) {
	// A cancelled context: should a guard fail, it returns instead of
	// waiting for a deadline and powering this machine off.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, args := range [][]string{
		nil,
		{"-deadline", "0"},
		{"-deadline", "x"},
		{"-deadline", "5", "extra"},
	} {
		if got := SentinelMain(ctx, args, nil, io.Discard, io.Discard); got != 2 {
			t.Errorf("SentinelMain(%q) = %d; want 2 (usage)", args, got)
		}
	}
	if os.Getppid() == 1 {
		t.Skip("the test's parent is PID 1: cannot check the parent guard")
	}
	var stderr bytes.Buffer
	if got := SentinelMain(ctx, []string{"-deadline", "1"}, nil, io.Discard, &stderr); got != 2 {
		t.Errorf("SentinelMain outside stage 1 = %d; want 2", got)
	}
	if !strings.Contains(stderr.String(), "refusing") {
		t.Errorf("SentinelMain outside stage 1 says %q; want a refusal", stderr.String())
	}
}

// fakeProc builds a procfs look-alike directory with n processes.
func fakeProc(t *testing.T, n int) int {
	t.Helper()
	dir := t.TempDir()
	write := func(p, s string) {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, p), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("loadavg", "0.50 0.20 0.10 2/31 99\n")
	write("self/comm", "")
	write("cmdline", "console=ttyS0\n")
	for pid := 1; pid <= n; pid++ {
		comm := "svc-" + strconv.Itoa(pid)
		if pid == 1 {
			comm = "graph-resolver"
		}
		write(fmt.Sprintf("%d/stat", pid), fmt.Sprintf("%d (%s) S 0 1 1 0 -1 4194560 1\n", pid, comm))
	}
	write("7/stat", "7 (odd) name) Z 1 7 7 0 -1 4194560\n")
	write("8/stat", "8 (kworker/0:1-events) I 2 0 0 0 -1 69238880\n") // PF_KTHREAD set
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

func TestDiagnostics(t *testing.T) {
	got := diagnostics(fakeProc(t, 12), diagLimit)
	for _, want := range []string{
		"loadavg 0.50 0.20 0.10 2/31 99\n",
		"1 graph-resolver S\n2 svc-2 S\n",
		"7 odd) name Z\n",
		"10 svc-10 S\n11 svc-11 S\n12 svc-12 S\n(1 kernel threads)\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("diagnostics =\n%s\nwant it to contain %q", got, want)
		}
	}
	if strings.Contains(got, "kworker") {
		t.Errorf("diagnostics lists a kernel thread:\n%s", got)
	}
	if strings.Index(got, "\n2 svc-2") > strings.Index(got, "\n10 svc-10") {
		t.Errorf("diagnostics lists processes out of numeric order:\n%s", got)
	}
}

func TestDiagnosticsCapped(t *testing.T) {
	got := diagnostics(fakeProc(t, 400), diagLimit)
	if len(got) > diagLimit {
		t.Errorf("diagnostics of 400 processes is %d bytes; want at most %d", len(got), diagLimit)
	}
	if !strings.Contains(got, "more processes") || !strings.HasPrefix(got, "loadavg ") {
		t.Errorf("capped diagnostics =\n%s\nwant the load average first and a count of what was left out", got)
	}
}

func TestDiagnosticsOfRealProc(t *testing.T) {
	fd, err := unix.Open("/proc", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Skip("no /proc: ", err)
	}
	defer unix.Close(fd)
	got := diagnostics(fd, diagLimit)
	self := fmt.Sprintf("\n%d ", os.Getpid())
	if !strings.HasPrefix(got, "loadavg ") || !strings.Contains(got, self) {
		t.Errorf("diagnostics(/proc) =\n%s\nwant the load average and this process (%s)", got, strings.TrimSpace(self))
	}
}

func TestSentinelFiresAtDeadline(t *testing.T) {
	var channel, log bytes.Buffer
	poweredOff := false
	s := sentinel{
		deadline: 30 * time.Second,
		channel:  &channel,
		proc:     fakeProc(t, 3),
		log:      &log,
		uptime:   func() time.Duration { return 31 * time.Second },
		powerOff: func() error { poweredOff = true; return nil },
	}
	if got := s.run(context.Background()); got != 0 {
		t.Errorf("sentinel.run = %d; want 0", got)
	}
	if !poweredOff {
		t.Error("sentinel did not power off after its deadline")
	}
	tr, err := report.Decode(&channel)
	if err != nil || tr.Sentinel == nil || len(tr.Corrupt) > 0 {
		t.Fatalf("channel holds %q: transcript %+v, %v; want one sentinel frame", channel.String(), tr, err)
	}
	if tr.Sentinel.Reason != "deadline" || tr.Sentinel.UptimeS != 31 ||
		!strings.Contains(tr.Sentinel.Diagnostics, "1 graph-resolver S") {
		t.Errorf("sentinel frame = %+v; want reason deadline, uptime 31 and the process list", *tr.Sentinel)
	}
	if !strings.Contains(log.String(), "deadline of 30 s passed") {
		t.Errorf("sentinel console output = %q; want it to say the deadline passed", log.String())
	}
}

func TestSentinelWaitsForDeadline(t *testing.T) {
	var channel bytes.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	s := sentinel{
		deadline: time.Hour,
		channel:  &channel,
		proc:     fakeProc(t, 1),
		log:      io.Discard,
		uptime:   func() time.Duration { cancel(); return time.Second },
		powerOff: func() error { t.Error("sentinel powered off before its deadline"); return nil },
	}
	if got := s.run(ctx); got != 0 {
		t.Errorf("sentinel.run = %d; want 0", got)
	}
	if channel.Len() != 0 {
		t.Errorf("sentinel wrote %q before its deadline", channel.String())
	}
}

func TestSentinelReportsPowerOffFailure(t *testing.T) {
	s := sentinel{
		deadline: time.Second,
		channel:  io.Discard,
		proc:     fakeProc(t, 1),
		log:      io.Discard,
		uptime:   func() time.Duration { return time.Minute },
		powerOff: func() error { return unix.EPERM },
	}
	if got := s.run(context.Background()); got != 1 {
		t.Errorf("sentinel.run with a failing power off = %d; want 1", got)
	}
}

func TestStatLine(t *testing.T) {
	for _, tc := range []struct {
		stat, line string
		kernel     bool
	}{
		{"1 (init) S 0 1 1 0 -1 4194560 1", "1 init S\n", false},
		{"42 (a b (c)) R 1 42 42 0 -1 4194304", "42 a b (c) R\n", false},
		{"9 (kworker/0:1H-kb) I 2 0 0 0 -1 69238880 0", "9 kworker/0:1H-kb I\n", true},
		{"5 (short) S 1", "5 short S\n", false},
		{"garbage", "garbage\n", false},
	} {
		line, kernel := statLine(tc.stat)
		if line != tc.line || kernel != tc.kernel {
			t.Errorf("statLine(%q) = %q, %t; want %q, %t", tc.stat, line, kernel, tc.line, tc.kernel)
		}
	}
}

func TestCapText(t *testing.T) {
	if got := capText("short", 100); got != "short" {
		t.Errorf("capText(short) = %q", got)
	}
	got := capText(strings.Repeat("x", 200), 100)
	if len(got) != 100 || !strings.HasSuffix(got, "[truncated]") {
		t.Errorf("capText(200 bytes, 100) = %q (%d bytes); want 100 bytes ending in [truncated]", got, len(got))
	}
}

func TestWaitBlockDevices(t *testing.T) {
	needRoot(t, "mknod")
	dir := t.TempDir()
	blk, chr := filepath.Join(dir, "vda1"), filepath.Join(dir, "ttyS1")
	if err := unix.Mknod(blk, unix.S_IFBLK|0o600, int(unix.Mkdev(254, 1))); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mknod(chr, unix.S_IFCHR|0o600, int(unix.Mkdev(4, 65))); err != nil {
		t.Fatal(err)
	}
	if err := waitBlockDevices(context.Background(), []string{blk}, time.Second); err != nil {
		t.Errorf("waitBlockDevices(block device) = %v", err)
	}
	for _, p := range []string{chr, filepath.Join(dir, "missing")} {
		err := waitBlockDevices(context.Background(), []string{blk, p}, 50*time.Millisecond)
		if err == nil || !strings.Contains(err.Error(), p) {
			t.Errorf("waitBlockDevices(%s) = %v; want an error naming it", p, err)
		}
	}
}

func TestWaitBlockDevicesSeesLateDevice(t *testing.T) {
	needRoot(t, "mknod")
	blk := filepath.Join(t.TempDir(), "vda2")
	done := make(chan error, 1)
	go func() { done <- waitBlockDevices(context.Background(), []string{blk}, time.Minute) }()
	time.Sleep(20 * time.Millisecond)
	if err := unix.Mknod(blk, unix.S_IFBLK|0o600, int(unix.Mkdev(254, 2))); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Errorf("waitBlockDevices(device created later) = %v", err)
	}
}

func TestFreeInitramfsStaysOnItsFileSystem(t *testing.T) {
	needRoot(t, "mounting a tmpfs")
	root := t.TempDir()
	for _, d := range []string{"etc/yakimg", "lib/modules/x/kernel", "newroot/dev"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"init", "etc/yakimg/stage1.json", "lib/modules/x/kernel/a.ko"} {
		if err := os.WriteFile(filepath.Join(root, f), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("/nowhere", filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	mnt := filepath.Join(root, "newroot/dev")
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, ""); err != nil {
		t.Skip("cannot mount tmpfs here: ", err)
	}
	t.Cleanup(func() { unix.Unmount(mnt, unix.MNT_DETACH) })
	keep := filepath.Join(mnt, "console")
	if err := os.WriteFile(keep, []byte("mounted"), 0o644); err != nil {
		t.Fatal(err)
	}

	dir, err := os.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	n, err := freeInitramfs(dir)
	// newroot cannot go: a file system is mounted below it.
	if err == nil || !strings.Contains(err.Error(), "newroot") {
		t.Errorf("freeInitramfs = %d, %v; want an error about newroot", n, err)
	}
	if n != 10 {
		t.Errorf("freeInitramfs removed %d entries; want 10", n)
	}
	if b, err := os.ReadFile(keep); err != nil || string(b) != "mounted" {
		t.Errorf("a file on the mounted tmpfs: %q, %v; want it untouched", b, err)
	}
	left, _ := filepath.Glob(filepath.Join(root, "*"))
	if len(left) != 1 || filepath.Base(left[0]) != "newroot" {
		t.Errorf("left behind %v; want only newroot", left)
	}
}
