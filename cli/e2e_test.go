package cli

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"yakimg/builder"
	"yakimg/rootfs"
	"yakimg/suites"
	"yakimg/suites/report"
	"yakimg/vm"
)

// requireOrSkip skips with reason, unless the test command demands the
// prerequisite (make test sets YAKIMG_REQUIRE_IMAGE=1), where it fails.
func requireOrSkip(t *testing.T, reason string) {
	t.Helper()
	if os.Getenv("YAKIMG_REQUIRE_IMAGE") == "1" {
		t.Fatalf("prerequisite missing: %s", reason)
	}
	t.Skip(reason)
}

func projectRoot(t *testing.T) string {
	t.Helper()
	root, err := builder.FindRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// run drives the CLI in-process and returns its exit code and output.
func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := Main(context.Background(), args, strings.NewReader(""), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// lockedAndCached returns the project's lock, skipping when the packages
// are not in the cache yet (make test fetches them first).
func lockedAndCached(t *testing.T, root string) *rootfs.Lock {
	t.Helper()
	lock, err := rootfs.ReadLock(filepath.Join(root, builder.LockFile))
	if err != nil {
		t.Fatal(err)
	}
	if missing := missingFromCache(rootfs.Cache{Dir: rootfs.DefaultCacheDir()}, lock); len(missing) > 0 {
		requireOrSkip(t, "packages not cached: "+strings.Join(missing, ", ")+" (run yakimg fetch)")
	}
	return lock
}

// copySource copies the files git knows of (tracked, or untracked and not
// ignored) to dst, as a fresh clone would have them.
func copySource(t *testing.T, root, dst string) {
	t.Helper()
	out, err := exec.Command("git", "-C", root, "ls-files", "-z", "--cached", "--others", "--exclude-standard").Output()
	if err != nil {
		t.Skipf("copying the source needs git: %v", err)
	}
	for _, rel := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		src := filepath.Join(root, rel)
		fi, err := os.Lstat(src)
		if err != nil || !fi.Mode().IsRegular() {
			continue // deleted in the work tree, or not a file
		}
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dst, rel)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, rel), data, fi.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
}

func sha256File(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// TestReproducibleBuild builds the image twice from copies of the source in
// different directories, with different TMPDIR, TZ, umask and source file
// mtimes, and demands identical artifacts that e2fsck accepts.
func TestReproducibleBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the image twice; skipped in -short mode")
	}
	root := projectRoot(t)
	lockedAndCached(t, root)
	base := t.TempDir()
	var outs []string
	for i, variant := range []struct {
		dir, tz string
		umask   int
		mtime   time.Time
	}{
		{"a/src", "UTC", 0o022, time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)},
		{"b/deeper/yakimg-copy", "Asia/Kolkata", 0o077, time.Date(2031, 7, 8, 9, 10, 11, 0, time.UTC)},
	} {
		src := filepath.Join(base, variant.dir)
		copySource(t, root, src)
		touchAll(t, src, variant.mtime)
		old := syscall.Umask(variant.umask)
		t.Cleanup(func() { syscall.Umask(old) })
		tmp := filepath.Join(base, "tmp", variant.tz)
		if err := os.MkdirAll(tmp, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Setenv("TMPDIR", tmp)
		t.Setenv("TZ", variant.tz)
		out := filepath.Join(base, "out"+string(rune('1'+i)))
		code, _, stderr := run(t, "build", "--project", src, "-o", out)
		if code != 0 {
			t.Fatalf("build %d exited %d:\n%s", i+1, code, stderr)
		}
		outs = append(outs, out)
	}
	for _, name := range []string{builder.KernelFile, builder.InitramfsFile, builder.DiskFile, builder.ManifestFile, vm.BootSpecFile} {
		a, b := sha256File(t, filepath.Join(outs[0], name)), sha256File(t, filepath.Join(outs[1], name))
		if a != b {
			t.Errorf("%s differs between builds: %s vs %s", name, a, b)
		} else {
			t.Logf("%s sha256 %s (identical)", name, a)
		}
	}
	checkDisk(t, outs[0])

	// One changed input byte: the disk's digest changes and diff names the
	// file and what changed about it.
	src := filepath.Join(base, "a/src")
	decl := filepath.Join(src, "components", "test-echo-server.toml")
	data, err := os.ReadFile(decl)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(decl, append(data, '#'), 0o644); err != nil {
		t.Fatal(err)
	}
	changed := filepath.Join(base, "out-changed")
	if code, _, stderr := run(t, "build", "--project", src, "-o", changed); code != 0 {
		t.Fatalf("build after a one-byte change exited %d:\n%s", code, stderr)
	}
	if a, b := sha256File(t, filepath.Join(outs[0], builder.DiskFile)), sha256File(t, filepath.Join(changed, builder.DiskFile)); a == b {
		t.Errorf("disk.img sha256 %s did not change with its input", a)
	}
	code, stdout, stderr := run(t, "diff", outs[0], changed)
	if code != exitDifferent || !strings.Contains(stdout, "etc/graph.d/test-echo-server.toml") {
		t.Errorf("yakimg diff after a one-byte change = %d, stdout %q, stderr %q; want %d naming etc/graph.d/test-echo-server.toml", code, stdout, stderr, exitDifferent)
	}
	t.Logf("yakimg diff after one changed byte:\n%s", stdout)
}

// touchAll sets the mtime of every file below dir, so that host metadata
// that leaked into an artifact would show as a difference.
func touchAll(t *testing.T, dir string, mtime time.Time) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Chtimes(p, mtime, mtime)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// checkDisk runs e2fsck -fn on every partition of the built disk.
func checkDisk(t *testing.T, dir string) {
	t.Helper()
	if _, err := exec.LookPath("e2fsck"); err != nil {
		requireOrSkip(t, "e2fsck not installed (apt-get install e2fsprogs)")
	}
	data, err := os.ReadFile(filepath.Join(dir, builder.ManifestFile))
	if err != nil {
		t.Fatal(err)
	}
	var m builder.Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	if m.Disk == nil || len(m.Disk.Partitions) != 2 {
		t.Fatalf("manifest disk layout = %+v; want two partitions", m.Disk)
	}
	disk, err := os.Open(filepath.Join(dir, builder.DiskFile))
	if err != nil {
		t.Fatal(err)
	}
	defer disk.Close()
	for _, p := range m.Disk.Partitions {
		part := filepath.Join(t.TempDir(), p.Name+".img")
		f, err := os.Create(part)
		if err != nil {
			t.Fatal(err)
		}
		_, err = io.Copy(f, io.NewSectionReader(disk, p.StartBytes, p.SizeBytes))
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("e2fsck", "-fn", part).CombinedOutput()
		if err != nil {
			t.Errorf("e2fsck -fn %s: %v\n%s", p.Name, err, out)
		}
	}
}

// TestBootSuites boots the image that make test built, runs every suite
// implemented so far and demands a trusted report in which each passed.
func TestBootSuites(t *testing.T) {
	img := os.Getenv("YAKIMG_TEST_IMAGE")
	if img == "" {
		requireOrSkip(t, "YAKIMG_TEST_IMAGE is not set (make test builds an image and sets it)")
	}
	if _, err := vm.LoadBootSpec(img); err != nil {
		requireOrSkip(t, "no image in "+img+": "+err.Error())
	}
	jsonPath := filepath.Join(t.TempDir(), "report.json")
	code, stdout, stderr := run(t, "boot", img, "--suite", strings.Join(suites.Available(), ","), "--accel", "tcg", "--timeout", "10m", "--json", jsonPath)
	t.Logf("summary:\n%s\nprogress:\n%s", stdout, stderr)
	if code != vm.ExitPass {
		t.Fatalf("yakimg boot exited %d; want 0", code)
	}
	data, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		TestResults map[string]struct {
			Passed, Failed int
			Cases          []struct{ Name, Status string }
		} `json:"test_results"`
		VMConfig struct {
			Accel      string `json:"accel"`
			TCGThreads string `json:"tcg_threads"`
			Kernel     string `json:"kernel"`
		} `json:"vm_config"`
		PerformanceMetrics map[string]float64 `json:"performance_metrics"`
		Outcome            struct {
			ExitCode int    `json:"exit_code"`
			Class    string `json:"class"`
		} `json:"outcome"`
	}
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatalf("report JSON: %v", err)
	}
	for _, name := range suites.Available() {
		res, ok := rep.TestResults[report.Key(name)]
		if !ok || res.Failed != 0 || res.Passed == 0 {
			t.Errorf("%s results = %+v; want cases passed and none failed", name, res)
		}
	}
	if rep.VMConfig.Accel != "tcg" || rep.VMConfig.TCGThreads != "single" || rep.VMConfig.Kernel == "" {
		t.Errorf("vm_config = %+v; want accel tcg, tcg_threads single and the guest's kernel release", rep.VMConfig)
	}
	if rep.PerformanceMetrics["yakiros_memory_kb"] <= 0 {
		t.Errorf("performance_metrics = %v; want yakiros_memory_kb measured", rep.PerformanceMetrics)
	}
	if rep.Outcome.Class != "passed" {
		t.Errorf("outcome = %+v", rep.Outcome)
	}
	if fi, err := os.Stat(filepath.Join(img, "console.log")); err != nil || fi.Size() == 0 {
		t.Errorf("console.log next to the artifacts: %v", err)
	}
}

// TestKilledBuildLeavesNoArtifact kills a real yakimg build with SIGKILL
// in the middle and demands that nothing appears at the output path.
func TestKilledBuildLeavesNoArtifact(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the yakimg binary and part of an image; skipped in -short mode")
	}
	root := projectRoot(t)
	lockedAndCached(t, root)
	bin := filepath.Join(t.TempDir(), "yakimg")
	if out, err := exec.Command("go", "build", "-o", bin, "yakimg/cmd/yakimg").CombinedOutput(); err != nil {
		t.Fatalf("go build yakimg: %v\n%s", err, out)
	}
	for _, after := range []string{"yakimg build: inputs:", "yakimg build: initramfs:"} {
		out := filepath.Join(t.TempDir(), "out")
		cmd := exec.Command(bin, "build", "--project", root, "-o", out)
		stderr, err := cmd.StderrPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(stderr)
		seen := false
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), after) {
				seen = true
				cmd.Process.Kill() // SIGKILL: no chance to clean up
				break
			}
		}
		cmd.Wait()
		if !seen {
			t.Fatalf("the build never printed %q", after)
		}
		if _, err := os.Stat(out); !os.IsNotExist(err) {
			t.Errorf("killed after %q: %s exists (%v)", after, out, err)
		}
	}
}
