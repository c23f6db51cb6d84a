package cli

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"yakimg/builder"
	"yakimg/rootfs"
	"yakimg/vm"
)

// syntheticImage writes a project (yakimg.toml and yakimg.lock) and an
// image directory whose manifest hashes its files and names that lock.
func syntheticImage(t *testing.T) (project, dir string) {
	t.Helper()
	project, dir = t.TempDir(), t.TempDir()
	lock := &rootfs.Lock{Format: rootfs.LockFormat, Packages: []rootfs.LockedPackage{{
		Name: "busybox-static", Version: "1:1.35.0-4+deb12u1+b1", Arch: "amd64",
		Filename: "pool/main/b/busybox/busybox-static_1.35.0-4+deb12u1+b1_amd64.deb",
		Size:     928188, SHA256: strings.Repeat("3d", 32), Source: "debian",
	}}}
	write := func(path string, data []byte) {
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(project, builder.ProjectFile), nil)
	if err := lock.Write(filepath.Join(project, builder.LockFile)); err != nil {
		t.Fatal(err)
	}
	disk := make([]byte, 4<<20)
	copy(disk[1<<20:], bytes.Repeat([]byte("ext4"), 1024))
	files := map[string][]byte{
		builder.KernelFile:    []byte("kernel"),
		builder.InitramfsFile: []byte("initramfs"),
		vm.BootSpecFile:       []byte(`{"kernel":"vmlinuz"}`),
		builder.DiskFile:      disk,
	}
	m := builder.Manifest{Format: builder.ManifestFormat, ImageDigest: "sha256:" + strings.Repeat("ab", 32),
		LockDigest: lock.Digest(), SourceDateEpoch: 1767225600, Packages: lock.Packages}
	for _, name := range []string{builder.KernelFile, builder.InitramfsFile, builder.DiskFile, vm.BootSpecFile} {
		write(filepath.Join(dir, name), files[name])
		sum := sha256.Sum256(files[name])
		m.Outputs = append(m.Outputs, builder.Output{Name: name, Size: int64(len(files[name])), SHA256: hex.EncodeToString(sum[:])})
	}
	data, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	write(filepath.Join(dir, builder.ManifestFile), data)
	return project, dir
}

func TestArchiveVerb(t *testing.T) {
	project, dir := syntheticImage(t)
	base := t.TempDir()
	file := filepath.Join(base, "image.yakimg")
	if code, stdout, stderr := run(t, "archive", "--project", project, dir, "-o", file); code != exitOK {
		t.Fatalf("archive = %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	if code, stdout, stderr := run(t, "archive", "--verify", file); code != exitOK || !strings.HasPrefix(stdout, "ok ") {
		t.Fatalf("archive --verify = %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	again := filepath.Join(base, "again.yakimg")
	if code, _, stderr := run(t, "archive", "--project", project, dir, "-o", again); code != exitOK {
		t.Fatalf("second archive = %d: %s", code, stderr)
	}
	if a, b := sha256File(t, file), sha256File(t, again); a != b {
		t.Errorf("archiving twice gave %s and %s; want the same bytes", a, b)
	}
	if tmps, _ := filepath.Glob(filepath.Join(base, ".*")); len(tmps) > 0 {
		t.Errorf("temporary files left behind: %v", tmps)
	}

	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	flipped := bytes.Clone(data)
	flipped[bytes.Index(flipped, []byte("ext4ext4"))] ^= 0xff
	bad := filepath.Join(base, "flipped.yakimg")
	if err := os.WriteFile(bad, flipped, 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, _ := run(t, "archive", "--verify", bad)
	if code != exitError || !strings.Contains(stdout, builder.DiskFile+": sha256:") || strings.Count(stdout, "\n") != 1 {
		t.Errorf("--verify of a flipped disk byte = %d, stdout %q; want 1 and one line naming %s", code, stdout, builder.DiskFile)
	}
	truncated := filepath.Join(base, "truncated.yakimg")
	if err := os.WriteFile(truncated, data[:len(data)-5000], 0o644); err != nil {
		t.Fatal(err)
	}
	if code, stdout, _ := run(t, "archive", "--verify", truncated); code != exitError || !strings.Contains(stdout, builder.DiskFile+": truncated: ") || strings.Contains(stdout, "missing") {
		t.Errorf("--verify of a truncated archive = %d, stdout %q; want 1 saying disk.img is truncated", code, stdout)
	}
	if code, _, stderr := run(t, "boot", truncated, "--accel", "tcg"); code != exitUsage || !strings.Contains(stderr, "corrupt archive") {
		t.Errorf("boot of a truncated archive = %d, stderr %q; want 2 refusing it as corrupt", code, stderr)
	}
}

func TestArchiveRefuses(t *testing.T) {
	project, dir := syntheticImage(t)
	out := filepath.Join(t.TempDir(), "image.yakimg")
	if err := os.WriteFile(filepath.Join(dir, builder.KernelFile), []byte("other kernel"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := run(t, "archive", "--project", project, dir, "-o", out)
	if code != exitUsage || !strings.Contains(stderr, builder.KernelFile) {
		t.Errorf("archive of a changed kernel = %d, stderr %q; want 2 naming %s", code, stderr, builder.KernelFile)
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("a refused archive was left at the output path")
	}
	for _, args := range [][]string{{"archive", dir}, {"archive", "--verify"}, {"archive", "--verify", filepath.Join(dir, "missing")}} {
		if code, _, _ := run(t, args...); code != exitUsage {
			t.Errorf("%v = %d; want 2", args, code)
		}
	}
}

// TestBootArchive archives the image make test built and boots the archive.
func TestBootArchive(t *testing.T) {
	img := os.Getenv("YAKIMG_TEST_IMAGE")
	if img == "" {
		requireOrSkip(t, "YAKIMG_TEST_IMAGE is not set (make test builds an image and sets it)")
	}
	file := filepath.Join(t.TempDir(), "image.yakimg")
	if code, _, stderr := run(t, "archive", "--project", projectRoot(t), img, "-o", file); code != exitOK {
		t.Fatalf("archive %s = %d: %s", img, code, stderr)
	}
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp) // where boot unpacks the archive
	code, stdout, stderr := run(t, "boot", file, "--suite", "smoke", "--accel", "tcg", "--timeout", "3m")
	t.Logf("summary:\n%s\nprogress:\n%s", stdout, stderr)
	if code != vm.ExitPass {
		t.Fatalf("yakimg boot %s exited %d; want 0", file, code)
	}
	if fi, err := os.Stat(file + ".console.log"); err != nil || fi.Size() == 0 {
		t.Errorf("console log beside the archive: %v", err)
	}
	if left, _ := os.ReadDir(tmp); len(left) > 0 {
		t.Errorf("unpacked image left in TMPDIR: %v", left)
	}
}
