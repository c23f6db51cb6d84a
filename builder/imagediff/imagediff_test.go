package imagediff

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	iofs "io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"yakimg/builder"
	"yakimg/builder/diskimage"
	"yakimg/initramfs"
	"yakimg/rootfs"
)

var testEpoch = time.Unix(1700000000, 0)

// image is the content of a synthetic image directory.
type image struct {
	kernel string
	init   *rootfs.Tree
	root   *rootfs.Tree
}

func baseImage(t *testing.T) image {
	t.Helper()
	in := rootfs.NewTree()
	must(t, in.AddFile("init", 0o755, []byte("#!/bin/sh\necho stage1\n")))
	must(t, in.AddFile("etc/yakimg/stage1.json", 0o644, []byte("{}\n")))
	must(t, in.AddCharDev("dev/console", 0o600, 5, 1))
	must(t, in.AddDir("tmp", 0o1777))
	root := rootfs.NewTree()
	must(t, root.AddFile("etc/hostname", 0o644, []byte("yakimg\n")))
	must(t, root.AddFile("bin/busybox", 0o755, []byte(strings.Repeat("busybox", 5000))))
	must(t, root.AddSymlink("bin/sh", "busybox"))
	must(t, root.Add(rootfs.Entry{Path: "home/user", Kind: rootfs.Dir, Perm: 0o700, UID: 1000, GID: 1000}))
	return image{kernel: "kernel", init: in, root: root}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// write lays img out as the builder does: vmlinuz, initramfs, a two
// partition disk (the second empty) and a manifest with their digests.
func (img image) write(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(dir, builder.KernelFile), []byte(img.kernel), 0o644))
	f, err := os.Create(filepath.Join(dir, builder.InitramfsFile))
	must(t, err)
	must(t, initramfs.WriteZstd(f, img.init, testEpoch))
	must(t, f.Close())
	layout, err := diskimage.Write(filepath.Join(dir, builder.DiskFile), diskimage.Spec{
		Epoch: testEpoch,
		Seed:  []byte("imagediff test"),
		Partitions: []diskimage.Partition{
			{Name: "yakimg-root", Label: "root", SizeMiB: 16, Tree: img.root},
			{Name: "yakimg-checkpoint", Label: "checkpoint", SizeMiB: 16},
		},
	})
	must(t, err)
	m := builder.Manifest{Format: builder.ManifestFormat, Disk: layout}
	for _, name := range []string{builder.KernelFile, builder.InitramfsFile, builder.DiskFile} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		must(t, err)
		sum := sha256.Sum256(data)
		m.Outputs = append(m.Outputs, builder.Output{Name: name, Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:])})
	}
	data, err := json.Marshal(m)
	must(t, err)
	must(t, os.WriteFile(filepath.Join(dir, builder.ManifestFile), data, 0o644))
	return dir
}

// where lists the differences as "artifact path change", the part of a
// report the tests pin down exactly.
func where(r *Report) []string {
	var out []string
	for _, d := range r.Differences {
		out = append(out, strings.TrimSpace(d.Artifact+" "+d.Path)+" "+d.Change)
	}
	return out
}

func TestTreeListsEveryArtifact(t *testing.T) {
	dir := baseImage(t).write(t)
	tree, err := Tree(dir)
	must(t, err)
	root := PartitionArtifact("yakimg-root")
	if got := len(tree); got != 3 {
		t.Fatalf("Tree(%s) has %d artifacts; want initramfs and two partitions", dir, got)
	}
	byPath := func(l Listing) map[string]Entry {
		m := map[string]Entry{}
		for _, e := range l {
			m[e.Path] = e
		}
		return m
	}
	ini := byPath(tree[builder.InitramfsFile])
	sum := sha256.Sum256([]byte("#!/bin/sh\necho stage1\n"))
	checks := []struct {
		artifact string
		got      Entry
		want     Entry
	}{
		{builder.InitramfsFile, ini["init"], Entry{Path: "init", Type: "file", Size: 22, Mode: 0o755, SHA256: hex.EncodeToString(sum[:])}},
		{builder.InitramfsFile, ini["dev/console"], Entry{Path: "dev/console", Type: "chardev", Mode: 0o600, Device: "5:1"}},
		{builder.InitramfsFile, ini["tmp"], Entry{Path: "tmp", Type: "dir", Mode: 0o1777}},
		{root, byPath(tree[root])["bin/sh"], Entry{Path: "bin/sh", Type: "symlink", Size: 7, Mode: 0o777, Target: "busybox"}},
		{root, byPath(tree[root])["home/user"], Entry{Path: "home/user", Type: "dir", Mode: 0o700, UID: 1000, GID: 1000}},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s: entry %+v; want %+v", c.artifact, c.got, c.want)
		}
	}
	bb := byPath(tree[root])["bin/busybox"]
	if bb.Size != 35000 || bb.Mode != 0o755 || bb.SHA256 == "" {
		t.Errorf("%s: bin/busybox = %+v; want a 35000-byte 0755 file with a digest", root, bb)
	}
	if l := tree[PartitionArtifact("yakimg-checkpoint")]; len(l) > 1 {
		t.Errorf("empty checkpoint partition lists %v; want at most lost+found", l)
	}
}

func TestIdenticalImages(t *testing.T) {
	a, b := baseImage(t).write(t), baseImage(t).write(t)
	r, err := Diff(a, b)
	must(t, err)
	if !r.Identical() {
		t.Fatalf("Diff of two builds of the same image = %v; want no differences", where(r))
	}
	if got := r.Text(); !strings.Contains(got, "identical") {
		t.Errorf("Text() = %q; want it to say identical", got)
	}
}

func TestNamesExactlyTheChanges(t *testing.T) {
	a := baseImage(t).write(t)
	img := baseImage(t)
	// One content byte in the initramfs, one mode and one added file on
	// the root partition, and a different kernel.
	must(t, img.init.AddFile("init", 0o755, []byte("#!/bin/sh\necho stage2\n")))
	must(t, img.root.AddFile("etc/hostname", 0o600, []byte("yakimg\n")))
	must(t, img.root.AddFile("etc/motd", 0o644, []byte("hello\n")))
	img.kernel = "kernel 2"
	b := img.write(t)

	r, err := Diff(a, b)
	must(t, err)
	root := PartitionArtifact("yakimg-root")
	want := []string{
		"disk.img changed",
		root + " etc/hostname changed",
		root + " etc/motd added",
		"initramfs.cpio.zst changed",
		"initramfs.cpio.zst init changed",
		"vmlinuz changed",
	}
	if got := where(r); !reflect.DeepEqual(got, want) {
		t.Fatalf("Diff differences = %q; want %q", got, want)
	}
	text := r.Text()
	t.Log(text)
	for _, line := range []string{
		root + ": etc/hostname: mode 0644 → 0600\n",
		root + ": etc/motd: added (type file, content sha256 ",
		"initramfs.cpio.zst: init: content sha256 ",
		"vmlinuz: sha256 ",
	} {
		if !strings.Contains(text, line) {
			t.Errorf("Text() lacks %q:\n%s", line, text)
		}
	}
	// The init change is content only: same length, so no size line.
	for _, d := range r.Differences {
		if d.Path == "init" && (len(d.Attrs) != 1 || d.Attrs[0].Name != "content sha256") {
			t.Errorf("init difference = %+v; want only the content digest", d)
		}
	}
	var back Report
	data, err := json.Marshal(r)
	must(t, err)
	must(t, json.Unmarshal(data, &back))
	if !reflect.DeepEqual(&back, r) {
		t.Errorf("JSON round trip changed the report:\n%s", data)
	}
}

func TestRemovedEntry(t *testing.T) {
	img := baseImage(t)
	a := img.write(t)
	must(t, img.root.AddFile("etc/extra", 0o644, []byte("x")))
	b := img.write(t)
	r, err := Diff(b, a)
	must(t, err)
	want := []string{"disk.img changed", PartitionArtifact("yakimg-root") + " etc/extra removed"}
	if got := where(r); !reflect.DeepEqual(got, want) {
		t.Fatalf("Diff differences = %q; want %q", got, want)
	}
}

func TestNotAnImage(t *testing.T) {
	good := baseImage(t).write(t)
	for name, dir := range map[string]string{
		"missing":     filepath.Join(t.TempDir(), "nope"),
		"no manifest": t.TempDir(),
	} {
		if _, err := Diff(good, dir); !errors.Is(err, ErrNotImage) {
			t.Errorf("%s: Diff(good, %s) error = %v; want ErrNotImage", name, dir, err)
		}
	}
}

// TestRealImage walks a real build (out/ at the repo root): its artifacts
// list the entries the builder puts there, and the image equals itself.
func TestRealImage(t *testing.T) {
	_, self, _, _ := runtime.Caller(0)
	out := filepath.Join(filepath.Dir(self), "..", "..", "out")
	if _, err := os.Stat(filepath.Join(out, builder.ManifestFile)); err != nil {
		t.Skipf("no built image at %s (run 'yakimg build' first): %v", out, err)
	}
	tree, err := Tree(out)
	must(t, err)
	for name, l := range tree {
		t.Logf("%s: %d entries", name, len(l))
	}
	hostname := sha256.Sum256([]byte("yakimg\n"))
	find := func(artifact, p string) Entry {
		for _, e := range tree[artifact] {
			if e.Path == p {
				return e
			}
		}
		t.Errorf("%s of %s has no %s", artifact, out, p)
		return Entry{}
	}
	root := PartitionArtifact("yakimg-root")
	for _, c := range []struct {
		got  Entry
		want Entry
	}{
		{find(root, "etc/hostname"), Entry{Path: "etc/hostname", Type: "file", Size: 7, Mode: 0o644, SHA256: hex.EncodeToString(hostname[:])}},
		{find(root, "bin/sh"), Entry{Path: "bin/sh", Type: "symlink", Size: 7, Mode: 0o777, Target: "busybox"}},
		{find(root, "tmp"), Entry{Path: "tmp", Type: "dir", Mode: 0o1777}},
		{find(builder.InitramfsFile, "dev/console"), Entry{Path: "dev/console", Type: "chardev", Mode: 0o600, Device: "5:1"}},
	} {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("entry %+v; want %+v", c.got, c.want)
		}
	}
	if e := find(root, "sbin/graph-resolver"); e.Type != "file" || e.Mode != 0o755 || e.Size < 1<<20 {
		t.Errorf("sbin/graph-resolver = %+v; want an executable of at least 1 MiB", e)
	}
	r, err := Diff(out, out)
	must(t, err)
	if !r.Identical() {
		t.Errorf("Diff(out, out) = %v; want identical", where(r))
	}
}

// TestPartitionListingMatchesDebugfs cross-checks the ext4 walk against
// e2fsprogs: debugfs rdump extracts the partition and every listed entry
// must match what the host sees of the extracted copy.
func TestPartitionListingMatchesDebugfs(t *testing.T) {
	if _, err := exec.LookPath("debugfs"); err != nil {
		t.Skip("needs debugfs (e2fsprogs) to cross-check the ext4 reader")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root: rdump restores owners only as root")
	}
	dir := baseImage(t).write(t)
	m, err := ReadManifest(dir)
	must(t, err)
	part := m.Disk.Partitions[0]
	l, err := ListPartition(filepath.Join(dir, builder.DiskFile), part)
	must(t, err)
	if len(l) < 6 {
		t.Fatalf("ListPartition lists %d entries; want the 6 of the base tree at least", len(l))
	}

	disk, err := os.ReadFile(filepath.Join(dir, builder.DiskFile))
	must(t, err)
	img := filepath.Join(t.TempDir(), "part.img")
	must(t, os.WriteFile(img, disk[part.StartBytes:part.StartBytes+part.SizeBytes], 0o644))
	dest := t.TempDir()
	if out, err := exec.Command("debugfs", "-R", "rdump / "+dest, img).CombinedOutput(); err != nil {
		t.Fatalf("debugfs rdump: %v\n%s", err, out)
	}
	var host Listing
	must(t, filepath.WalkDir(dest, func(p string, d iofs.DirEntry, err error) error {
		if err != nil || p == dest {
			return err
		}
		rel, _ := filepath.Rel(dest, p)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		e := Entry{Path: filepath.ToSlash(rel), Mode: uint32(st.Mode & 0o7777), UID: st.Uid, GID: st.Gid}
		switch {
		case fi.Mode().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			e.Type, e.Size, e.SHA256 = "file", int64(len(data)), digest(data)
		case fi.IsDir():
			e.Type = "dir"
		case fi.Mode()&iofs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			// Linux gives symlinks mode 0777 whatever the inode says.
			e.Type, e.Size, e.Target, e.Mode = "symlink", int64(len(target)), target, 0o777
		}
		host = append(host, e)
		return nil
	}))
	sortListing(host)
	if !reflect.DeepEqual(l, host) {
		t.Errorf("ListPartition = %+v\nwant (debugfs rdump) %+v", l, host)
	}
}
