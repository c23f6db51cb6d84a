package cli

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"yakimg/builder"
	"yakimg/builder/imagediff"
	"yakimg/rootfs"
	"yakimg/rootfs/alpine/alpinetest"
)

// alpineProject copies the project, adds an [alpine] source served from a
// mirror directory signed with a test key, and links the Debian packages
// already cached into a private cache, so the test downloads nothing.
func alpineProject(t *testing.T, pkgs []alpinetest.Pkg) (src, mirror, cache string, key *alpinetest.Key) {
	t.Helper()
	root := projectRoot(t)
	lock := lockedAndCached(t, root)
	base := t.TempDir()
	src, mirror, cache = filepath.Join(base, "src"), filepath.Join(base, "mirror"), filepath.Join(base, "cache")
	copySource(t, root, src)
	key = alpinetest.NewKey(t, "yakimg-test.rsa.pub")
	keys := filepath.Join(base, "keys")
	if err := os.MkdirAll(keys, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := key.WritePublic(keys); err != nil {
		t.Fatal(err)
	}
	alpinetest.WriteMirror(t, mirror, "x86_64", key, pkgs)
	toml, err := os.ReadFile(filepath.Join(src, builder.ProjectFile))
	if err != nil {
		t.Fatal(err)
	}
	toml = append(toml, []byte("\n[alpine]\nurl = \""+mirror+"\"\nkeys = \""+keys+"\"\npackages = [\"yak-hello\"]\n")...)
	if err := os.WriteFile(filepath.Join(src, builder.ProjectFile), toml, 0o644); err != nil {
		t.Fatal(err)
	}
	shared := rootfs.Cache{Dir: rootfs.DefaultCacheDir()}
	mine := rootfs.Cache{Dir: cache}
	for _, p := range lock.Packages {
		if err := os.MkdirAll(filepath.Dir(mine.Path(p.SHA256)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(shared.Path(p.SHA256), mine.Path(p.SHA256)); err != nil {
			t.Fatal(err)
		}
	}
	// The unpacked archives only save time; link them when they are there.
	if kept, _ := filepath.Glob(filepath.Join(shared.Dir, "unpacked", "*.tar")); len(kept) > 0 {
		if err := os.Symlink(filepath.Join(shared.Dir, "unpacked"), filepath.Join(cache, "unpacked")); err != nil {
			t.Fatal(err)
		}
	}
	return src, mirror, cache, key
}

var yakHello = []alpinetest.Pkg{
	{Name: "yak-hello", Version: "1.2-r0", Depends: []string{"yak-lib>=1", "so:libyak.so.1"},
		Files: []alpinetest.File{
			{Path: "usr/bin/yak-hello", Mode: 0o755, Data: "#!/bin/sh\necho hello from alpine\n"},
			{Path: "usr/share/yak/hello.txt", Mode: 0o644, Data: "hello\n"},
		}},
	{Name: "yak-lib", Version: "1.0-r3", Provides: []string{"so:libyak.so.1=1"},
		Files: []alpinetest.File{{Path: "usr/lib/libyak.so.1", Mode: 0o755, Data: "not really ELF"}}},
	{Name: "yak-unused", Version: "9", Files: []alpinetest.File{{Path: "usr/share/unused", Data: "x"}}},
}

// TestAlpineEndToEnd locks, fetches and builds an image with packages from
// a generated, signed Alpine mirror, and finds their files in the disk.
func TestAlpineEndToEnd(t *testing.T) {
	src, _, cache, _ := alpineProject(t, yakHello)
	if code, _, stderr := run(t, "lock", "--update", "--project", src, "--cache", cache); code != 0 {
		t.Fatalf("lock exited %d:\n%s", code, stderr)
	}
	lock, err := rootfs.ReadLock(filepath.Join(src, builder.LockFile))
	if err != nil {
		t.Fatal(err)
	}
	var alpine []string
	for _, p := range lock.Packages {
		if p.Source == "alpine" {
			alpine = append(alpine, p.Name)
			if !strings.HasPrefix(p.Checksum, "Q1") || len(p.ControlSHA256) != 64 || len(p.DataSHA256) != 64 || p.Filename != "x86_64/"+p.Name+"-"+p.Version+".apk" {
				t.Errorf("locked %+v; want checksum, control and data digests and the mirror path", p)
			}
		}
	}
	if strings.Join(alpine, " ") != "yak-hello yak-lib" {
		t.Errorf("alpine packages in the lock = %q; want yak-hello and its dependency yak-lib", alpine)
	}
	if code, _, stderr := run(t, "fetch", "--project", src, "--cache", cache); code != 0 {
		t.Fatalf("fetch exited %d:\n%s", code, stderr)
	}
	out := filepath.Join(t.TempDir(), "out")
	if code, _, stderr := run(t, "build", "--offline", "--project", src, "--cache", cache, "-o", out); code != 0 {
		t.Fatalf("build exited %d:\n%s", code, stderr)
	}
	tree, err := imagediff.Tree(out)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"usr/bin/yak-hello": "#!/bin/sh\necho hello from alpine\n", "usr/share/yak/hello.txt": "hello\n", "usr/lib/libyak.so.1": "not really ELF"}
	for _, e := range tree[imagediff.PartitionArtifact("yakimg-root")] {
		if data, ok := want[e.Path]; ok {
			sum := sha256.Sum256([]byte(data))
			if e.SHA256 != hex.EncodeToString(sum[:]) {
				t.Errorf("%s in the disk has sha256 %s; want the package's content", e.Path, e.SHA256)
			}
			delete(want, e.Path)
		}
	}
	if len(want) > 0 {
		t.Errorf("files of the alpine packages missing from the root partition: %v", want)
	}
}

// TestAlpineRefusesTampering changes one byte of a package in the mirror,
// then signs the index with a key the project does not trust: fetch and
// lock must refuse, naming the problem, and leave cache and lock alone.
func TestAlpineRefusesTampering(t *testing.T) {
	src, mirror, cache, _ := alpineProject(t, yakHello)
	if code, _, stderr := run(t, "lock", "--update", "--project", src, "--cache", cache); code != 0 {
		t.Fatalf("lock exited %d:\n%s", code, stderr)
	}
	lockPath := filepath.Join(src, builder.LockFile)
	lock, err := rootfs.ReadLock(lockPath)
	if err != nil {
		t.Fatal(err)
	}
	hello, _ := lock.Find("yak-hello")
	c := rootfs.Cache{Dir: cache}
	if err := os.Remove(c.Path(hello.SHA256)); err != nil {
		t.Fatal(err)
	}
	apk := filepath.Join(mirror, hello.Filename)
	data, err := os.ReadFile(apk)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)-20] ^= 0x40 // inside the data member's compressed stream
	if err := os.WriteFile(apk, data, 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := run(t, "fetch", "--project", src, "--cache", cache)
	if code != exitError || !strings.Contains(stderr, "yak-hello-1.2-r0") || !strings.Contains(stderr, "data member") {
		t.Errorf("fetch of a tampered package = %d, %q; want a refusal naming yak-hello-1.2-r0 and its data member", code, stderr)
	}
	if c.Has(hello) {
		t.Error("tampered package entered the cache")
	}
	t.Logf("fetch of a tampered package: %s", stderr)

	before, err := os.ReadFile(lockPath)
	if err != nil {
		t.Fatal(err)
	}
	stranger := alpinetest.NewKey(t, "stranger.rsa.pub")
	alpinetest.WriteMirror(t, mirror, "x86_64", stranger, yakHello)
	code, _, stderr = run(t, "lock", "--update", "--project", src, "--cache", cache)
	if code != exitError || !strings.Contains(stderr, "stranger.rsa.pub") {
		t.Errorf("lock from an index signed by an unknown key = %d, %q; want a refusal naming stranger.rsa.pub", code, stderr)
	}
	t.Logf("lock from an index signed by an unknown key: %s", stderr)
	if after, _ := os.ReadFile(lockPath); string(after) != string(before) {
		t.Error("refused lock --update changed yakimg.lock")
	}
}
