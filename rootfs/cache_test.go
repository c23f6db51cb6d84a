package rootfs

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDefaultCacheDir(t *testing.T) {
	t.Setenv("HOME", "/home/u")
	t.Setenv("XDG_CACHE_HOME", "")
	t.Setenv("YAKIMG_CACHE", "")
	if got := DefaultCacheDir(); got != "/home/u/.cache/yakimg" {
		t.Errorf("DefaultCacheDir() = %q with HOME only; want /home/u/.cache/yakimg", got)
	}
	t.Setenv("XDG_CACHE_HOME", "/xdg")
	if got := DefaultCacheDir(); got != "/xdg/yakimg" {
		t.Errorf("DefaultCacheDir() = %q with XDG_CACHE_HOME; want /xdg/yakimg", got)
	}
	t.Setenv("YAKIMG_CACHE", "/c")
	if got := DefaultCacheDir(); got != "/c" {
		t.Errorf("DefaultCacheDir() = %q with YAKIMG_CACHE; want /c", got)
	}
}

// packageFile writes data to a file outside the cache and returns its
// path and a lock entry that matches it.
func packageFile(t *testing.T, data string) (string, LockedPackage) {
	t.Helper()
	src := filepath.Join(t.TempDir(), "pkg.deb")
	if err := os.WriteFile(src, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(data))
	return src, LockedPackage{
		Name: "busybox-static", Version: "1:1.35.0-4", Arch: "amd64", Filename: "pool/x.deb",
		Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:]), Source: "debian",
	}
}

func wantErr(t *testing.T, what string, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s succeeded; want an error", what)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("%s error = %q; want it to mention %q", what, err, p)
		}
	}
}

func TestCachePutRead(t *testing.T) {
	c := Cache{Dir: t.TempDir()}
	src, p := packageFile(t, "package bytes")
	if c.Has(p) {
		t.Fatal("Has() = true on an empty cache")
	}
	_, err := c.Read(p)
	wantErr(t, "Read of a missing package", err, "busybox-static 1:1.35.0-4", "run yakimg fetch")

	if err := c.Put(p, src); err != nil {
		t.Fatalf("Put: %v", err)
	}
	if want := filepath.Join(c.Dir, "sha256", p.SHA256); c.Path(p.SHA256) != want {
		t.Errorf("Path() = %s; want %s", c.Path(p.SHA256), want)
	}
	fi, err := os.Stat(c.Path(p.SHA256))
	if err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("cache file: %v, %v; want mode 0644 whatever the source's", fi, err)
	}
	if !c.Has(p) {
		t.Error("Has() = false after Put")
	}
	b, err := c.Read(p)
	if err != nil || string(b) != "package bytes" {
		t.Errorf("Read = %q, %v; want the put bytes", b, err)
	}
	if _, err := os.Stat(src); err != nil {
		t.Errorf("Put consumed its source: %v", err)
	}
}

func TestCachePutRefusesMismatch(t *testing.T) {
	c := Cache{Dir: t.TempDir()}
	src, p := packageFile(t, "tampered bytes")
	got := p.SHA256
	p.SHA256 = strings.Repeat("0", 64)
	wantErr(t, "Put of a file with the wrong digest", c.Put(p, src),
		"busybox-static 1:1.35.0-4", got, p.SHA256)
	left, _ := os.ReadDir(filepath.Join(c.Dir, "sha256"))
	if len(left) != 0 {
		t.Errorf("refused Put left %d files in the cache; want none", len(left))
	}
}

func TestCacheReadDetectsCorruption(t *testing.T) {
	for _, tc := range []struct {
		name    string
		corrupt func(path string) error
		has     bool // a same-size corruption passes Has, which does not hash
	}{
		{"tampered", func(path string) error {
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			b[3] ^= 0xff
			return os.WriteFile(path, b, 0o644)
		}, true},
		{"truncated", func(path string) error { return os.Truncate(path, 5) }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Cache{Dir: t.TempDir()}
			src, p := packageFile(t, "original package bytes")
			if err := c.Put(p, src); err != nil {
				t.Fatalf("Put: %v", err)
			}
			path := c.Path(p.SHA256)
			if err := tc.corrupt(path); err != nil {
				t.Fatal(err)
			}
			if c.Has(p) != tc.has {
				t.Errorf("Has() = %v; want %v", !tc.has, tc.has)
			}
			b, _ := os.ReadFile(path)
			sum := sha256.Sum256(b)
			_, err := c.Read(p)
			wantErr(t, "Read of a corrupted file", err, "package busybox-static 1:1.35.0-4", path,
				"has sha256 "+hex.EncodeToString(sum[:]), "lock wants "+p.SHA256, "run yakimg fetch")
		})
	}
}

func TestCacheDataTarKeepsAndChecksTheUnpackedArchive(t *testing.T) {
	deb := makeDeb(t, "xz", []tarEntry{reg("./usr/bin/hello", 0o755, 0, 0, "hi")})
	src := filepath.Join(t.TempDir(), "hello.deb")
	if err := os.WriteFile(src, deb, 0o600); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(deb)
	p := LockedPackage{Name: "hello", Version: "1", Arch: "amd64", Filename: "pool/h.deb",
		Size: int64(len(deb)), SHA256: hex.EncodeToString(sum[:]), Source: "debian"}
	c := Cache{Dir: t.TempDir()}
	if err := c.Put(p, src); err != nil {
		t.Fatal(err)
	}
	first, err := c.DataTar(p)
	if err != nil {
		t.Fatal(err)
	}
	kept, _ := filepath.Glob(filepath.Join(c.Dir, "unpacked", p.SHA256+".*.tar"))
	if len(kept) != 1 {
		t.Fatalf("unpacked archives kept: %q; want one", kept)
	}
	tr, err := UnpackTar("hello data.tar", first, nil)
	if err != nil {
		t.Fatal(err)
	}
	if e, ok := tr.Get("usr/bin/hello"); !ok || string(e.Data) != "hi" {
		t.Fatalf("usr/bin/hello = %+v, %v; want \"hi\"", e, ok)
	}

	// The kept copy is what the second call returns: remove the package
	// file and it still works.
	if err := os.Remove(c.Path(p.SHA256)); err != nil {
		t.Fatal(err)
	}
	again, err := c.DataTar(p)
	if err != nil || string(again) != string(first) {
		t.Fatalf("DataTar from the kept copy = %d bytes, %v; want the first result", len(again), err)
	}

	// A damaged kept copy is not used: with the package file gone too, the
	// cache must say the package is missing rather than return bad bytes.
	if err := os.WriteFile(kept[0], first[:len(first)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = c.DataTar(p)
	wantErr(t, "DataTar with a truncated kept archive and no package", err, "not in the cache")
	if _, err := os.Stat(kept[0]); !os.IsNotExist(err) {
		t.Errorf("truncated kept archive still there: %v", err)
	}
}
