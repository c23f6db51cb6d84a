package rootfs

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
)

var (
	pkgBusybox = LockedPackage{
		Name: "busybox-static", Version: "1:1.35.0-4", Arch: "amd64",
		Filename: "pool/main/b/busybox/busybox-static_1.35.0-4_amd64.deb",
		Size:     928188, SHA256: strings.Repeat("ab", 32), Source: "debian",
	}
	pkgLibcAmd64 = LockedPackage{
		Name: "libc6", Version: "2.36-9", Arch: "amd64",
		Filename: "pool/main/g/glibc/libc6_2.36-9_amd64.deb",
		Size:     2757936, SHA256: strings.Repeat("01", 32), Source: "debian",
	}
	pkgLibcI386 = LockedPackage{
		Name: "libc6", Version: "2.36-9", Arch: "i386",
		Filename: "pool/main/g/glibc/libc6_2.36-9_i386.deb",
		Size:     2600000, SHA256: strings.Repeat("23", 32), Source: "debian",
	}
)

const canonicalLock = `{
  "format": 1,
  "packages": [
    {
      "name": "busybox-static",
      "version": "1:1.35.0-4",
      "arch": "amd64",
      "filename": "pool/main/b/busybox/busybox-static_1.35.0-4_amd64.deb",
      "size": 928188,
      "sha256": "abababababababababababababababababababababababababababababababab",
      "source": "debian"
    },
    {
      "name": "libc6",
      "version": "2.36-9",
      "arch": "amd64",
      "filename": "pool/main/g/glibc/libc6_2.36-9_amd64.deb",
      "size": 2757936,
      "sha256": "0101010101010101010101010101010101010101010101010101010101010101",
      "source": "debian"
    },
    {
      "name": "libc6",
      "version": "2.36-9",
      "arch": "i386",
      "filename": "pool/main/g/glibc/libc6_2.36-9_i386.deb",
      "size": 2600000,
      "sha256": "2323232323232323232323232323232323232323232323232323232323232323",
      "source": "debian"
    }
  ]
}
`

func TestLockRoundTrip(t *testing.T) {
	unsorted := &Lock{Format: LockFormat, Packages: []LockedPackage{pkgLibcI386, pkgBusybox, pkgLibcAmd64}}
	path := filepath.Join(t.TempDir(), "yakimg.lock")
	if err := unsorted.Write(path); err != nil {
		t.Fatalf("Write: %v", err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != canonicalLock {
		t.Errorf("written lock =\n%s\nwant\n%s", b, canonicalLock)
	}
	if got := unsorted.Packages[0]; got != pkgLibcI386 {
		t.Errorf("Write reordered the caller's lock: first package is now %v", got)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("directory holds %d files after Write; want only the lock (no temp files)", len(entries))
	}

	l, err := ReadLock(path)
	if err != nil {
		t.Fatalf("ReadLock: %v", err)
	}
	want := &Lock{Format: 1, Packages: []LockedPackage{pkgBusybox, pkgLibcAmd64, pkgLibcI386}}
	if !reflect.DeepEqual(l, want) {
		t.Errorf("ReadLock = %+v; want %+v", l, want)
	}

	// The digest is of the canonical bytes: pinned here so that any change
	// of the encoding, which would change every image's identity, is seen.
	const digest = "sha256:91e22e7ff966a037ff6836f76c3c2e9f23df58b85d0b425a57af33ea48568684"
	if got := unsorted.Digest(); got != digest {
		t.Errorf("Digest() = %s; want %s", got, digest)
	}
	if got := l.Digest(); got != digest {
		t.Errorf("Digest() of the lock read back = %s; want %s", got, digest)
	}
	changed := *l
	changed.Packages = append([]LockedPackage{}, l.Packages...)
	changed.Packages[1].Version = "2.36-9+deb12u1"
	if changed.Digest() == digest {
		t.Error("Digest() did not change with a package version")
	}
}

func TestLockFind(t *testing.T) {
	l := &Lock{Format: LockFormat, Packages: []LockedPackage{pkgLibcI386, pkgBusybox, pkgLibcAmd64}}
	if p, ok := l.Find("libc6"); !ok || p != pkgLibcAmd64 {
		t.Errorf("Find(libc6) = %v, %v; want the amd64 one", p, ok)
	}
	if p, ok := l.Find("busybox-static"); !ok || p != pkgBusybox {
		t.Errorf("Find(busybox-static) = %v, %v; want %v", p, ok, pkgBusybox)
	}
	if _, ok := l.Find("busybox"); ok {
		t.Error("Find(busybox) found a package; want none")
	}
}

func TestReadLockRejects(t *testing.T) {
	edit := func(from, to string) string {
		if !strings.Contains(canonicalLock, from) {
			t.Fatalf("fixture has no %q", from)
		}
		return strings.Replace(canonicalLock, from, to, 1)
	}
	tests := []struct {
		name, content string
		want          []string
	}{
		{"format 2", edit(`"format": 1`, `"format": 2`), []string{"format 2 is newer", "upgrade yakimg"}},
		{"format 0", edit(`"format": 1`, `"format": 0`), []string{"unknown format 0"}},
		{"no format", `{"packages": []}`, []string{`no "format" field`}},
		{"not json", "format = 1\n", []string{"invalid character"}},
		{"bad hex", edit("abababab", "abababzz"), []string{"busybox-static 1:1.35.0-4", "abababzz", "not 64 lowercase hex"}},
		{"upper hex", edit("abababab", "ABABABAB"), []string{"busybox-static", "not 64 lowercase hex"}},
		{"short hex", edit("abababab", ""), []string{"busybox-static", "not 64 lowercase hex"}},
		{"duplicate", edit(`"arch": "i386"`, `"arch": "amd64"`), []string{"libc6:amd64 is locked twice"}},
		{"missing fields", edit(`"version": "1:1.35.0-4",`+"\n"+`      "arch": "amd64",`, ""), []string{"busybox-static", "missing version, arch"}},
		{"zero size", edit(`"size": 928188`, `"size": 0`), []string{"busybox-static", "missing size"}},
		{"unknown field", edit(`"source": "debian"`, `"source": "debian", "url": "x"`), []string{`unknown field "url"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "yakimg.lock")
			if err := os.WriteFile(path, []byte(tc.content), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := ReadLock(path)
			if err == nil {
				t.Fatal("ReadLock succeeded; want an error")
			}
			for _, w := range append(tc.want, path) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("ReadLock error = %q; want it to mention %q", err, w)
				}
			}
		})
	}
}

func TestLockWriteRefusesInvalid(t *testing.T) {
	bad := pkgBusybox
	bad.SHA256 = "nothex"
	path := filepath.Join(t.TempDir(), "yakimg.lock")
	if err := (&Lock{Format: LockFormat, Packages: []LockedPackage{bad}}).Write(path); err == nil {
		t.Fatal("Write of a lock with a bad sha256 succeeded; want an error")
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("refused Write left a file: %v", err)
	}
}

// aptCandidate resolves busybox-static from the host's apt lists once per
// test binary: reading them takes about a second.
var aptCandidate = sync.OnceValues(func() (*Lock, error) {
	return Resolve(context.Background(), Sources{}, Want{Debian: []string{"busybox-static"}}, Cache{})
})

// needApt skips unless apt knows busybox-static, and returns its candidate.
func needApt(t *testing.T) LockedPackage {
	t.Helper()
	l, err := aptCandidate()
	if err != nil && strings.Contains(err.Error(), "run apt-get update") {
		t.Skip("needs apt lists knowing busybox-static: ", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	return l.Packages[0]
}

func TestResolveFromHostApt(t *testing.T) {
	p := needApt(t)
	if p.Name != "busybox-static" || p.Version == "" || p.Arch == "" || p.Source != "debian" ||
		!strings.HasPrefix(p.Filename, "pool/") || p.Size <= 0 || !isSHA256Hex(p.SHA256) {
		t.Errorf("Resolve(busybox-static) = %+v; want every field filled", p)
	}
	s := Sources{Debian: DebianSource{Arch: "amd64", Exclude: []string{"python3", "python3-protobuf"}}}
	l, err := Resolve(context.Background(), s, Want{Kernel: "linux-image-cloud-amd64", Debian: []string{"criu"}}, Cache{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range l.Packages {
		names = append(names, p.Name)
	}
	if !slices.IsSorted(names) {
		t.Errorf("lock packages not in name order: %q", names)
	}
	for _, want := range []string{"criu", "libc6", "libnftables1", "linux-image-cloud-amd64"} {
		if !slices.Contains(names, want) {
			t.Errorf("lock lacks %s: %q", want, names)
		}
	}
	for _, unwanted := range []string{"python3", "initramfs-tools", "kmod", "linux-image-6.1.0-50-cloud-amd64"} {
		if slices.Contains(names, unwanted) {
			t.Errorf("lock has %s (excluded, or only a dependency of the kernel): %q", unwanted, names)
		}
	}
	if !l.Covers(s, Want{Kernel: "linux-image-cloud-amd64", Debian: []string{"criu"}}) || l.Covers(s, Want{Debian: []string{"coreutils"}}) {
		t.Error("Covers does not match the lock's packages")
	}
}

func TestResolveRefusesFromHostApt(t *testing.T) {
	needApt(t)
	for _, c := range []struct {
		w    Want
		s    Sources
		want string
	}{
		{Want{Debian: []string{"no-such-package-yakimg"}}, Sources{}, `root "no-such-package-yakimg": no package for amd64`},
		{Want{Kernel: "no-such-kernel-yakimg"}, Sources{}, `no package "no-such-kernel-yakimg" for amd64`},
		{Want{Debian: []string{"criu"}}, Sources{Debian: DebianSource{Exclude: []string{"criu"}}}, `"criu" is both a root and excluded`},
	} {
		c.s.Debian.Arch = "amd64"
		_, err := Resolve(context.Background(), c.s, c.w, Cache{})
		wantErr(t, fmt.Sprintf("Resolve(%+v)", c.w), err, c.want)
	}
}
