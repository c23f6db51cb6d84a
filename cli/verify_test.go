package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"yakimg/builder"
	"yakimg/vm"
)

func TestVerifyNotAnImage(t *testing.T) {
	code, stdout, stderr := run(t, "verify", "--project", projectRoot(t), t.TempDir())
	if code != exitUsage || !strings.Contains(stderr, "manifest.json") {
		t.Errorf("verify of an empty directory = %d, stdout %q, stderr %q; want 2 naming manifest.json", code, stdout, stderr)
	}
}

// TestVerify builds once from a copy of the source (so edits elsewhere in
// the checkout cannot change its digest under the test), then verifies the
// build as it is, with a tampered disk image and with an edited manifest.
func TestVerify(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the image four times; skipped in -short mode")
	}
	root := projectRoot(t)
	lockedAndCached(t, root)
	base := t.TempDir()
	src := filepath.Join(base, "src")
	copySource(t, root, src)
	out := filepath.Join(base, "out")
	if code, _, stderr := run(t, "build", "--project", src, "-o", out); code != exitOK {
		t.Fatalf("build exited %d:\n%s", code, stderr)
	}

	t.Run("reproduces", func(t *testing.T) {
		// The rebuild must take the recorded epoch, not the environment's.
		t.Setenv("SOURCE_DATE_EPOCH", "12345")
		code, stdout, stderr := run(t, "verify", "--project", src, out)
		if code != exitOK {
			t.Fatalf("verify = %d; want 0\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
		}
		for _, name := range []string{builder.KernelFile, builder.InitramfsFile, builder.DiskFile, builder.ManifestFile} {
			if !strings.Contains(stdout, "ok "+name+" sha256:") {
				t.Errorf("stdout lacks an ok line for %s:\n%s", name, stdout)
			}
		}
		if !strings.Contains(stderr, "yakimg verify: build complete") {
			t.Errorf("stderr lacks the rebuild's progress:\n%s", stderr)
		}
		leftovers, _ := filepath.Glob(filepath.Join(base, ".out.verify-*"))
		if len(leftovers) > 0 {
			t.Errorf("temporary rebuild left behind: %v", leftovers)
		}
	})

	t.Run("archive", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "image.tar")
		if code, _, stderr := run(t, "archive", out, "--project", src, "-o", file); code != exitOK {
			t.Fatalf("archive exited %d:\n%s", code, stderr)
		}
		code, stdout, stderr := run(t, "verify", "--project", src, file)
		if code != exitOK || !strings.Contains(stdout, "ok "+builder.DiskFile+" sha256:") {
			t.Fatalf("verify of the archive = %d; want 0 with an ok line for %s\nstdout:\n%s\nstderr:\n%s", code, builder.DiskFile, stdout, stderr)
		}
	})

	t.Run("edited source digest", func(t *testing.T) {
		edited := "sha256:" + strings.Repeat("0", 64)
		dir := editedManifest(t, out, "source_digest", edited)
		code, stdout, stderr := run(t, "verify", "--project", src, dir)
		want := "source digest: image " + edited + ", this checkout sha256:"
		if code != exitUsage || !strings.Contains(stderr, want) || !strings.Contains(stderr, "check out the commit") {
			t.Errorf("verify = %d, stdout %q, stderr %q; want 2 and %q", code, stdout, stderr, want)
		}
	})

	t.Run("edited epoch", func(t *testing.T) {
		// The artifacts still match their manifest, but a rebuild at the
		// recorded epoch cannot give them: the initramfs and the disk
		// differ, and the diff explains it.
		dir := editedManifest(t, out, "source_date_epoch", 86400)
		for _, name := range []string{builder.KernelFile, builder.InitramfsFile, builder.DiskFile, vm.BootSpecFile} {
			if err := os.Link(filepath.Join(out, name), filepath.Join(dir, name)); err != nil {
				t.Fatal(err)
			}
		}
		code, stdout, stderr := run(t, "verify", "--project", src, dir)
		if code != exitDifferent {
			t.Fatalf("verify = %d; want 1\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
		}
		for _, want := range []string{
			"ok " + builder.KernelFile + " ",
			"MISMATCH " + builder.InitramfsFile + " rebuilt sha256:",
			"MISMATCH " + builder.DiskFile + " rebuilt sha256:",
			"MISMATCH " + builder.ManifestFile + " rebuilt sha256:",
			"\n" + builder.InitramfsFile + ": sha256 ", // imagediff's explanation
		} {
			if !strings.Contains(stdout, want) {
				t.Errorf("stdout lacks %q:\n%s", want, stdout)
			}
		}
	})

	t.Run("tampered disk", func(t *testing.T) {
		disk := filepath.Join(out, builder.DiskFile)
		f, err := os.OpenFile(disk, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		b := make([]byte, 1)
		const at = 1 << 20 // inside the root partition's first block group
		if _, err := f.ReadAt(b, at); err != nil {
			t.Fatal(err)
		}
		b[0] ^= 0xff
		_, err = f.WriteAt(b, at)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			t.Fatal(err)
		}
		code, stdout, stderr := run(t, "verify", "--project", src, out)
		if code != exitDifferent || !strings.Contains(stdout, "MISMATCH "+builder.DiskFile+" ") {
			t.Fatalf("verify = %d; want 1 with a MISMATCH line for disk.img\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
		}
		for _, name := range []string{builder.KernelFile, builder.InitramfsFile} {
			if !strings.Contains(stdout, "ok "+name+" ") {
				t.Errorf("stdout lacks an ok line for untouched %s:\n%s", name, stdout)
			}
		}
	})
}

// editedManifest writes a new directory holding the manifest of image dir
// with one field replaced.
func editedManifest(t *testing.T, dir, field string, value any) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, builder.ManifestFile))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	m[field] = value
	if data, err = json.Marshal(m); err != nil {
		t.Fatal(err)
	}
	edited := t.TempDir()
	if err := os.WriteFile(filepath.Join(edited, builder.ManifestFile), data, 0o644); err != nil {
		t.Fatal(err)
	}
	return edited
}
