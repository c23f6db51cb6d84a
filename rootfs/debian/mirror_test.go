package debian

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"yakimg/rootfs/debian/debiantest"
)

var mirrorDebs = []debiantest.Deb{
	{Name: "hello", Version: "2.10-3", Depends: "libc6 (>= 2.34), mail-transport-agent",
		Files: []debiantest.File{{Path: "usr/bin/hello", Mode: 0o755, Data: []byte("hello\n")}}},
	{Name: "libc6", Version: "2.36-9", MultiArch: "same", Compression: "xz",
		Files: []debiantest.File{{Path: "usr/lib/x86_64-linux-gnu/libc.so.6", Data: []byte("libc")}}},
	{Name: "libc6", Version: "2.31-13"},
	{Name: "exim4", Version: "1:4.96-15", Arch: "all", PreDepends: "libc6", Provides: "mail-transport-agent"},
	{Name: "unrelated", Version: "1.0"},
}

// newMirror writes mirrorDebs as suite "testing" into a new directory.
func newMirror(t *testing.T) string {
	dir := t.TempDir()
	debiantest.WriteMirror(t, dir, "testing", "amd64", mirrorDebs)
	return dir
}

func testMirror(url string) Mirror {
	return Mirror{URL: url, Suite: "testing", Components: []string{"main"}, Arch: "amd64"}
}

func fileSHA256(t *testing.T, name string) (string, int64) {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), int64(len(b))
}

func TestMirrorIndexEveryTransport(t *testing.T) {
	dir := newMirror(t)
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	defer srv.Close()
	want, err := testMirror(dir).Index(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got := closure(want); !slices.Equal(got, []string{"hello=2.10-3", "libc6=2.36-9", "libc6=2.31-13", "exim4=1:4.96-15", "unrelated=1.0"}) {
		t.Errorf("Index = %q; want mirrorDebs in order", got)
	}
	for _, p := range want {
		sum, size := fileSHA256(t, filepath.Join(dir, p.Filename))
		if p.SHA256 != sum || p.Size != size {
			t.Errorf("%s: index says %d bytes sha256 %s; the pool file has %d bytes sha256 %s", p.Filename, p.Size, p.SHA256, size, sum)
		}
	}
	if e := want[3]; e.Architecture != "all" || len(e.Provides) != 1 || e.Provides[0].Name != "mail-transport-agent" ||
		e.Filename != "pool/main/e/exim4/exim4_4.96-15_all.deb" {
		t.Errorf("exim4 = %+v", e)
	}
	for _, url := range []string{"file://" + dir, srv.URL, srv.URL + "/"} {
		got, err := testMirror(url).Index(context.Background())
		if err != nil {
			t.Errorf("Index(%s): %v", url, err)
		} else if !reflect.DeepEqual(got, want) {
			t.Errorf("Index(%s) = %q; want %q as from the directory", url, closure(got), closure(want))
		}
	}
}

// TestMirrorResolveAndFetch resolves across a mirror and fetches the
// closure over HTTP, getting exactly the bytes that were built.
func TestMirrorResolveAndFetch(t *testing.T) {
	dir := newMirror(t)
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	defer srv.Close()
	m := testMirror(srv.URL)
	idx, err := m.Index(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got, err := Resolve(idx, "amd64", []string{"hello"})
	if err != nil {
		t.Fatal(err)
	}
	if names := closure(got); !slices.Equal(names, []string{"exim4=1:4.96-15", "hello=2.10-3", "libc6=2.36-9"}) {
		t.Errorf("Resolve(hello) = %q", names)
	}
	for _, p := range got {
		var b bytes.Buffer
		if err := m.FetchPackage(context.Background(), p, &b); err != nil {
			t.Errorf("FetchPackage(%s): %v", p.Name, err)
		}
		for _, d := range mirrorDebs {
			if d.Name == p.Name && d.Version == p.Version {
				if d.Arch == "" {
					d.Arch = "amd64"
				}
				if !bytes.Equal(b.Bytes(), debiantest.BuildDeb(t, d)) {
					t.Errorf("FetchPackage(%s) = %d bytes, not the built .deb", p.Name, b.Len())
				}
			}
		}
	}
}

// TestMirrorIndexFallsBack takes the next index the Release lists when the
// mirror lacks one, as Debian's mirrors lack the plain Packages.
func TestMirrorIndexFallsBack(t *testing.T) {
	dir := newMirror(t)
	want, err := testMirror(dir).Index(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "dists/testing/main/binary-amd64")
	for _, gone := range []string{"Packages.xz", "Packages.gz"} {
		if err := os.Remove(filepath.Join(bin, gone)); err != nil {
			t.Fatal(err)
		}
		got, err := testMirror(dir).Index(context.Background())
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("Index without %s = %q, %v; want %q", gone, closure(got), err, closure(want))
		}
	}
}

// edit changes the file name of the mirror at dir with f.
func edit(t *testing.T, dir, name string, f func([]byte) []byte) {
	t.Helper()
	p := filepath.Join(dir, filepath.FromSlash(name))
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, f(b), 0o644); err != nil {
		t.Fatal(err)
	}
}

func flipLastByte(b []byte) []byte {
	b[len(b)-1] ^= 1
	return b
}

const xzIndex = "dists/testing/main/binary-amd64/Packages.xz"

func TestMirrorIndexRefusesChangedIndex(t *testing.T) {
	dir := newMirror(t)
	want, _ := fileSHA256(t, filepath.Join(dir, xzIndex))
	edit(t, dir, xzIndex, flipLastByte)
	got, _ := fileSHA256(t, filepath.Join(dir, xzIndex))
	_, err := testMirror(dir).Index(context.Background())
	msg := xzIndex + ": got sha256 " + got + ", expected " + want + " (from Release)"
	if err == nil || !strings.Contains(err.Error(), msg) {
		t.Errorf("Index with a changed Packages.xz = %v; want %q", err, msg)
	}
}

func TestMirrorIndexRefuses(t *testing.T) {
	for _, c := range []struct {
		name    string
		breakIt func(t *testing.T, dir string)
		m       func(Mirror) Mirror
		want    []string // all must be in the error
	}{
		{name: "truncated", breakIt: func(t *testing.T, dir string) {
			edit(t, dir, xzIndex, func(b []byte) []byte { return b[:len(b)-1] })
		}, want: []string{xzIndex, "bytes, expected"}},
		{name: "longer", breakIt: func(t *testing.T, dir string) {
			edit(t, dir, xzIndex, func(b []byte) []byte { return append(b, 0) })
		}, want: []string{xzIndex, "more than the expected"}},
		{name: "missing component", m: func(m Mirror) Mirror {
			m.Components = []string{"main", "contrib"}
			return m
		}, want: []string{"component contrib: Release lists no contrib/binary-amd64/Packages"}},
		{name: "missing architecture", m: func(m Mirror) Mirror {
			m.Arch = "arm64"
			return m
		}, want: []string{"component main: Release lists no main/binary-arm64/Packages"}},
		{name: "listed but absent", breakIt: func(t *testing.T, dir string) {
			if err := os.RemoveAll(filepath.Join(dir, "dists/testing/main")); err != nil {
				t.Fatal(err)
			}
		}, want: []string{"serves none of the indexes Release lists", "Packages.xz", "no such file"}},
		{name: "no Release", m: func(m Mirror) Mirror {
			m.Suite = "unstable"
			return m
		}, want: []string{"no InRelease", "no Release", "dists/unstable/Release"}},
		{name: "other suite", breakIt: func(t *testing.T, dir string) {
			if err := os.Rename(filepath.Join(dir, "dists/testing"), filepath.Join(dir, "dists/stable")); err != nil {
				t.Fatal(err)
			}
		}, m: func(m Mirror) Mirror {
			m.Suite = "stable"
			return m
		}, want: []string{"dists/stable/Release: is for suite \"testing\", codename \"testing\", not \"stable\""}},
		{name: "InRelease not signed", breakIt: func(t *testing.T, dir string) {
			b, err := os.ReadFile(filepath.Join(dir, "dists/testing/Release"))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "dists/testing/InRelease"), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}, want: []string{"dists/testing/InRelease: not a cleartext-signed message"}},
		{name: "duplicate SHA256 section", breakIt: func(t *testing.T, dir string) {
			edit(t, dir, "dists/testing/Release", func(b []byte) []byte {
				return append(b, "SHA256:\n "+strings.Repeat("0", 64)+" 1 main/binary-amd64/Packages.xz\n"...)
			})
		}, want: []string{"dists/testing/Release: line", `duplicate field "SHA256"`}},
		{name: "no components", m: func(m Mirror) Mirror {
			m.Components = nil
			return m
		}, want: []string{"need a suite, components and an architecture"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := newMirror(t)
			if c.breakIt != nil {
				c.breakIt(t, dir)
			}
			m := testMirror(dir)
			if c.m != nil {
				m = c.m(m)
			}
			pkgs, err := m.Index(context.Background())
			if err == nil {
				t.Fatalf("Index = %d packages, no error; want %q", len(pkgs), c.want)
			}
			t.Logf("refused: %v", err)
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Index error = %v; want it to contain %q", err, w)
				}
			}
		})
	}
}

func TestFetchPackageRefuses(t *testing.T) {
	dir := newMirror(t)
	m := testMirror(dir)
	idx, err := m.Index(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	hello := idx[0]
	want := hello.SHA256
	edit(t, dir, hello.Filename, flipLastByte)
	got, _ := fileSHA256(t, filepath.Join(dir, hello.Filename))
	var b bytes.Buffer
	err = m.FetchPackage(context.Background(), hello, &b)
	msg := hello.Filename + ": got sha256 " + got + ", expected " + want
	if err == nil || !strings.Contains(err.Error(), msg) {
		t.Errorf("FetchPackage of a changed .deb = %v; want %q", err, msg)
	}
	edit(t, dir, hello.Filename, func(b []byte) []byte { return append(flipLastByte(b), 0) })
	if err := m.FetchPackage(context.Background(), hello, &b); err == nil || !strings.Contains(err.Error(), "more than the expected") {
		t.Errorf("FetchPackage of a longer .deb = %v; want more than the expected", err)
	}
	for _, p := range []Package{
		{Name: "x1", Version: "1", Filename: hello.Filename, Size: hello.Size},
		{Name: "x1", Version: "1", Filename: hello.Filename, SHA256: hello.SHA256},
		{Name: "x1", Version: "1", Size: 1, SHA256: hello.SHA256},
	} {
		if err := m.FetchPackage(context.Background(), p, &b); err == nil || !strings.Contains(err.Error(), "need Filename, Size and SHA256") {
			t.Errorf("FetchPackage(%+v) = %v; want need Filename, Size and SHA256", p, err)
		}
	}
	p := hello
	p.Filename = "../../etc/passwd"
	if err := m.FetchPackage(context.Background(), p, &b); err == nil || !strings.Contains(err.Error(), "not a relative path inside the mirror") {
		t.Errorf("FetchPackage(%s) = %v; want a refusal", p.Filename, err)
	}
}

// signedMirror returns a mirror directory signed by a new key, and the
// keyring with that key.
func signedMirror(t *testing.T) (dir, keyring string) {
	dir = newMirror(t)
	return dir, debiantest.Sign(t, dir, "testing")
}

func TestMirrorSigned(t *testing.T) {
	dir, keyring := signedMirror(t)
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	defer srv.Close()
	want, err := testMirror(dir).Index(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, url := range []string{dir, srv.URL} {
		m := testMirror(url)
		m.Keyring = keyring
		got, err := m.Index(context.Background())
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("signed Index(%s) = %q, %v; want %q", url, closure(got), err, closure(want))
		}
	}
	// Without InRelease, Release and Release.gpg are used.
	if err := os.Remove(filepath.Join(dir, "dists/testing/InRelease")); err != nil {
		t.Fatal(err)
	}
	m := testMirror(srv.URL)
	m.Keyring = keyring
	if got, err := m.Index(context.Background()); err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("Index from Release and Release.gpg = %q, %v; want %q", closure(got), err, closure(want))
	}
}

// TestMirrorSignedIgnoresUnsignedText proves the Release text is what
// gpgv vouches for: text an attacker adds around the signed part, here a
// second SHA256 section that would otherwise be refused as a duplicate,
// is never read.
func TestMirrorSignedIgnoresUnsignedText(t *testing.T) {
	dir, keyring := signedMirror(t)
	extra := "SHA256:\n " + strings.Repeat("0", 64) + " 1 main/binary-amd64/Packages.xz\n"
	edit(t, dir, "dists/testing/InRelease", func(b []byte) []byte { return append(b, extra...) })
	m := testMirror(dir)
	m.Keyring = keyring
	if got, err := m.Index(context.Background()); err != nil || len(got) != len(mirrorDebs) {
		t.Errorf("Index with text after the signature = %q, %v; want the %d signed packages", closure(got), err, len(mirrorDebs))
	}
}

func TestMirrorSignedRefuses(t *testing.T) {
	_, otherKeyring := signedMirror(t)
	for _, c := range []struct {
		name    string
		breakIt func(t *testing.T, dir string)
		other   bool // use another key's keyring
		want    string
	}{
		{name: "other key", other: true, want: "No public key"},
		{name: "tampered InRelease", want: "BAD signature", breakIt: func(t *testing.T, dir string) {
			edit(t, dir, "dists/testing/InRelease", func(b []byte) []byte {
				return bytes.Replace(b, []byte("Label: yakimg-test"), []byte("Label: yakimg-tesT"), 1)
			})
		}},
		{name: "tampered Release", want: "BAD signature", breakIt: func(t *testing.T, dir string) {
			if err := os.Remove(filepath.Join(dir, "dists/testing/InRelease")); err != nil {
				t.Fatal(err)
			}
			edit(t, dir, "dists/testing/Release", func(b []byte) []byte {
				return bytes.Replace(b, []byte("Label: yakimg-test"), []byte("Label: yakimg-tesT"), 1)
			})
		}},
		{name: "InRelease not signed", want: "no valid OpenPGP data found", breakIt: func(t *testing.T, dir string) {
			edit(t, dir, "dists/testing/InRelease", func([]byte) []byte {
				b, err := os.ReadFile(filepath.Join(dir, "dists/testing/Release"))
				if err != nil {
					t.Fatal(err)
				}
				return b
			})
		}},
		{name: "unsigned Release", want: "unsigned Release: no InRelease", breakIt: func(t *testing.T, dir string) {
			for _, f := range []string{"InRelease", "Release.gpg"} {
				if err := os.Remove(filepath.Join(dir, "dists/testing", f)); err != nil {
					t.Fatal(err)
				}
			}
		}},
		{name: "signed index, changed Packages", want: "got sha256", breakIt: func(t *testing.T, dir string) {
			edit(t, dir, xzIndex, flipLastByte)
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir, keyring := signedMirror(t)
			if c.breakIt != nil {
				c.breakIt(t, dir)
			}
			if c.other {
				keyring = otherKeyring
			}
			m := testMirror(dir)
			m.Keyring = keyring
			pkgs, err := m.Index(context.Background())
			if err == nil {
				t.Fatalf("Index = %d packages, no error; want %q", len(pkgs), c.want)
			}
			t.Logf("refused: %v", err)
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("Index error = %v; want it to contain %q", err, c.want)
			}
		})
	}
}

func TestMirrorMissingKeyring(t *testing.T) {
	dir, _ := signedMirror(t)
	m := testMirror(dir)
	m.Keyring = filepath.Join(t.TempDir(), "absent.gpg")
	if _, err := m.Index(context.Background()); err == nil || !strings.Contains(err.Error(), "keyring: stat") {
		t.Errorf("Index with a missing keyring = %v; want keyring: stat …", err)
	}
}
