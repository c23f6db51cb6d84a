package cli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"yakimg/builder"
	"yakimg/rootfs"
	"yakimg/vm"
)

func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{}, "Usage: yakimg <verb>"},
		{[]string{"frobnicate"}, `unknown verb "frobnicate"`},
		{[]string{"boot", "--suite", "no-such-suite"}, `unknown suite "no-such-suite"; known suites: smoke`},
		{[]string{"boot", "--timeout", "-1s"}, "--timeout must be positive"},
		{[]string{"boot", "--accel", "xen"}, `--accel "xen"`},
		{[]string{"boot", "--tcg-threads", "auto"}, `--tcg-threads "auto": want single or multi`},
		{[]string{"boot", filepath.Join(t.TempDir(), "nothing-here")}, "build an image with 'yakimg build"},
		{[]string{"build", "extra"}, `unexpected argument "extra"`},
	} {
		code, _, stderr := run(t, tc.args...)
		if code != exitUsage || !strings.Contains(stderr, tc.want) {
			t.Errorf("yakimg %q = %d, %q; want %d and %q", tc.args, code, stderr, exitUsage, tc.want)
		}
	}
}

func TestHelpHasExample(t *testing.T) {
	for name := range verbs {
		code, stdout, stderr := run(t, name, "--help")
		if code != 0 || !strings.Contains(stdout, "Example:\n  ") || !strings.Contains(stdout[strings.Index(stdout, "Example:"):], "yakimg "+name) {
			t.Errorf("yakimg %s --help = %d, %q; want 0 and an example", name, code, stdout)
		}
		if stderr != "" {
			t.Errorf("yakimg %s --help also wrote to stderr: %q", name, stderr)
		}
	}
}

// fakeImage writes an image directory whose files exist but are not
// bootable; enough for the checks that come before QEMU runs.
func fakeImage(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{"vmlinuz", "initramfs.cpio.zst", "disk.img"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	spec := &vm.BootSpec{Kernel: "vmlinuz", Initrd: "initramfs.cpio.zst", Disk: "disk.img", MemoryMB: 256, CPUs: 1, Machine: "pc"}
	if err := spec.Write(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestBootWithoutQEMU(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	code, stdout, stderr := run(t, "boot", fakeImage(t), "--accel", "tcg", "--timeout", "30s")
	if code != vm.ExitInfra || !strings.Contains(stdout+stderr, "apt-get install qemu-system-x86") {
		t.Fatalf("boot without QEMU = %d, stdout %q, stderr %q; want %d and how to install it", code, stdout, stderr, vm.ExitInfra)
	}
}

func TestBuildUnwritableOutput(t *testing.T) {
	root := projectRoot(t)
	lockedAndCached(t, root)
	code, _, stderr := run(t, "build", "--project", root, "-o", "/proc/yakimg-cannot-write/out")
	if code == 0 || strings.Count(strings.TrimSpace(stderr), "\n") != 0 || !strings.Contains(stderr, "/proc/yakimg-cannot-write") {
		t.Fatalf("build into /proc = %d, %q; want a one-line error naming the directory", code, stderr)
	}
}

// TestBuildRefusesTamperedCache corrupts one cached package and expects the
// build to name it and both digests, and to leave no output behind.
func TestBuildRefusesTamperedCache(t *testing.T) {
	root := projectRoot(t)
	lock := lockedAndCached(t, root)
	cache := rootfs.Cache{Dir: t.TempDir()}
	var victim rootfs.LockedPackage
	for _, p := range lock.Packages {
		data, err := os.ReadFile(rootfs.Cache{Dir: rootfs.DefaultCacheDir()}.Path(p.SHA256))
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(p.Name, "busybox") {
			victim = p
			data[len(data)/2] ^= 0xff
		}
		if err := os.MkdirAll(filepath.Dir(cache.Path(p.SHA256)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(cache.Path(p.SHA256), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(t.TempDir(), "out")
	code, _, stderr := run(t, "build", "--project", root, "--cache", cache.Dir, "-o", out)
	if code == 0 || !strings.Contains(stderr, victim.Name) || !strings.Contains(stderr, victim.SHA256) {
		t.Fatalf("build with tampered %s = %d, %q; want refusal naming the package and its locked digest", victim.Name, code, stderr)
	}
	assertNoOutput(t, out)
}

// TestInterruptedBuildLeavesNothing cancels a build midway.
func TestInterruptedBuildLeavesNothing(t *testing.T) {
	root := projectRoot(t)
	lock := lockedAndCached(t, root)
	proj, err := builder.LoadProject(root)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := filepath.Join(t.TempDir(), "out")
	_, err = builder.Build(ctx, builder.Options{
		Project: proj, Lock: lock, Cache: rootfs.Cache{Dir: rootfs.DefaultCacheDir()}, OutDir: out,
		Progress: func(string, ...any) { cancel() }, // the first progress line comes before any artifact
	})
	if err == nil {
		t.Fatal("cancelled build succeeded")
	}
	assertNoOutput(t, out)
}

func assertNoOutput(t *testing.T, out string) {
	t.Helper()
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("%s exists after a failed build", out)
	}
	left, _ := filepath.Glob(filepath.Join(filepath.Dir(out), ".*"))
	if len(left) > 0 {
		t.Errorf("work directories left behind: %v", left)
	}
}

// TestBuildOfflineNamesEveryMissingPackage runs an offline build against a
// cache holding every package but one truncated file and one missing file:
// it must fail at once naming both, and write nothing.
func TestBuildOfflineNamesEveryMissingPackage(t *testing.T) {
	root := projectRoot(t)
	lock := lockedAndCached(t, root)
	if len(lock.Packages) < 2 {
		t.Skip("needs a lock with two packages")
	}
	cache := rootfs.Cache{Dir: t.TempDir()}
	truncated, gone := lock.Packages[0], lock.Packages[1]
	for _, p := range lock.Packages[:1] {
		data, err := os.ReadFile(rootfs.Cache{Dir: rootfs.DefaultCacheDir()}.Path(p.SHA256))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(cache.Path(p.SHA256)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(cache.Path(p.SHA256), data[:len(data)/2], 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(t.TempDir(), "out")
	code, _, stderr := run(t, "build", "--offline", "--project", root, "--cache", cache.Dir, "-o", out)
	if code != exitError {
		t.Fatalf("offline build with missing packages = %d, %q; want %d", code, stderr, exitError)
	}
	for _, p := range lock.Packages {
		if !strings.Contains(stderr, p.Name+"="+p.Version) {
			t.Errorf("offline build error does not name %s (truncated %s, gone %s): %q", p, truncated, gone, stderr)
		}
	}
	if n := strings.Count(strings.TrimSpace(stderr), "\n"); n != 0 {
		t.Errorf("offline build printed %d lines; want one: %q", n+1, stderr)
	}
	assertNoOutput(t, out)
}

// TestLockRefusesLeavesLockAlone asks lock --update for a closure that
// cannot be resolved, and with a lock from a newer format: each is refused
// with the reason, and yakimg.lock keeps its bytes.
func TestLockRefusesLeavesLockAlone(t *testing.T) {
	if _, err := os.Stat("/var/lib/apt/lists"); err != nil {
		t.Skip("needs apt package lists (/var/lib/apt/lists)")
	}
	dir := t.TempDir()
	toml := "kernel = \"linux-image-cloud-amd64\"\npackages = [\"busybox-static\", \"no-such-package-yakimg\"]\n"
	if err := os.WriteFile(filepath.Join(dir, builder.ProjectFile), []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
	old := []byte(`{"format": 1, "packages": []}` + "\n")
	lockPath := filepath.Join(dir, builder.LockFile)
	if err := os.WriteFile(lockPath, old, 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := run(t, "lock", "--update", "--project", dir)
	if code != exitError || !strings.Contains(stderr, `"no-such-package-yakimg"`) {
		t.Errorf("lock of an unknown package = %d, %q; want %d naming it", code, stderr, exitError)
	}
	if now, _ := os.ReadFile(lockPath); string(now) != string(old) {
		t.Errorf("refused lock rewrote yakimg.lock: %q", now)
	}

	newer := []byte(`{"format": 99, "packages": []}` + "\n")
	if err := os.WriteFile(lockPath, newer, 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = run(t, "build", "--project", dir, "-o", filepath.Join(dir, "out"))
	if code == exitOK || !strings.Contains(stderr, "format 99 is newer than this yakimg understands") {
		t.Errorf("build with a format-99 lock = %d, %q; want a refusal saying to upgrade", code, stderr)
	}
	assertNoOutput(t, filepath.Join(dir, "out"))
}
