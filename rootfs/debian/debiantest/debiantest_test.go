package debiantest

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

var hello = Deb{
	Name: "hello", Version: "1:2.10-3", Arch: "amd64",
	Depends: "libc6 (>= 2.34)", PreDepends: "dpkg (>= 1.15)", Provides: "greeter",
	MultiArch: "foreign",
	Files: []File{
		{Path: "usr/bin/hello", Mode: 0o755, Data: []byte("#!/bin/sh\necho hello\n")},
		{Path: "usr/share/doc/hello/copyright", Data: []byte("public domain\n")},
		{Path: "usr/bin/hi", Mode: fs.ModeSymlink, Link: "hello"},
		{Path: "var/lib/hello", Mode: fs.ModeDir | 0o700},
		{Path: "usr/bin/hello-suid", Mode: fs.ModeSetuid | 0o755, Data: []byte("x")},
		{Path: "tmp", Mode: fs.ModeDir | fs.ModeSticky | 0o777},
	},
}

func TestBuildDebDpkgDeb(t *testing.T) {
	if _, err := exec.LookPath("dpkg-deb"); err != nil {
		t.Skip("needs dpkg-deb for the cross-check: ", err)
	}
	for _, c := range []string{"gz", "xz", "none"} {
		t.Run(c, func(t *testing.T) {
			d := hello
			d.Compression = c
			deb := filepath.Join(t.TempDir(), "hello.deb")
			if err := os.WriteFile(deb, BuildDeb(t, d), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command("dpkg-deb", "--field", deb, "Package", "Version", "Architecture",
				"Depends", "Pre-Depends", "Provides", "Multi-Arch", "Installed-Size").CombinedOutput()
			if err != nil {
				t.Fatalf("dpkg-deb --field: %v\n%s", err, out)
			}
			want := "Package: hello\nVersion: 1:2.10-3\nArchitecture: amd64\nDepends: libc6 (>= 2.34)\n" +
				"Pre-Depends: dpkg (>= 1.15)\nProvides: greeter\nMulti-Arch: foreign\nInstalled-Size: 1\n"
			if string(out) != want {
				t.Errorf("dpkg-deb --field = %q; want %q", out, want)
			}
			root := t.TempDir()
			if out, err := exec.Command("dpkg-deb", "--extract", deb, root).CombinedOutput(); err != nil {
				t.Fatalf("dpkg-deb --extract: %v\n%s", err, out)
			}
			for _, f := range hello.Files {
				p := filepath.Join(root, f.Path)
				fi, err := os.Lstat(p)
				if err != nil {
					t.Errorf("%s: %v", f.Path, err)
					continue
				}
				perm := map[fs.FileMode]fs.FileMode{0: 0o644, fs.ModeDir: 0o755, fs.ModeSymlink: 0o777}[f.Mode.Type()]
				if f.Mode.Perm() != 0 {
					perm = f.Mode.Perm()
				}
				special := fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky
				if fi.Mode().Type() != f.Mode.Type() || fi.Mode().Perm() != perm || fi.Mode()&special != f.Mode&special {
					t.Errorf("%s: mode %v; want type %v perm %v special %v", f.Path, fi.Mode(), f.Mode.Type(), perm, f.Mode&special)
				}
				switch f.Mode.Type() {
				case 0:
					if b, _ := os.ReadFile(p); !bytes.Equal(b, f.Data) {
						t.Errorf("%s = %q; want %q", f.Path, b, f.Data)
					}
				case fs.ModeSymlink:
					if l, _ := os.Readlink(p); l != f.Link {
						t.Errorf("%s -> %q; want %q", f.Path, l, f.Link)
					}
				}
			}
			// Every timestamp is the fixed one, never the build's.
			fi, err := os.Stat(filepath.Join(root, "usr/bin/hello"))
			if err != nil || fi.ModTime().Unix() != mtime.Unix() {
				t.Errorf("usr/bin/hello mtime = %v, %v; want %v", fi.ModTime(), err, mtime)
			}
		})
	}
}

func TestBuildDebDeterministic(t *testing.T) {
	a, b := BuildDeb(t, hello), BuildDeb(t, hello)
	if !bytes.Equal(a, b) {
		t.Fatal("two builds of the same Deb differ")
	}
	changed := hello
	changed.Files = append([]File{{Path: "usr/bin/hello", Mode: 0o755, Data: []byte("#!/bin/sh\necho hellO\n")}}, hello.Files[1:]...)
	if bytes.Equal(a, BuildDeb(t, changed)) {
		t.Error("changing a file's byte did not change the .deb")
	}
}

func TestBuildDebRefuses(t *testing.T) {
	for _, c := range []struct {
		files []File
		want  string
	}{
		{[]File{{Path: "/etc/x"}}, "not a clean relative path"},
		{[]File{{Path: "a/../b"}}, "not a clean relative path"},
		{[]File{{Path: "a"}, {Path: "a"}}, "given twice"},
		{[]File{{Path: "a"}, {Path: "a/b"}}, "parent a is not a directory"},
		{[]File{{Path: "a/b"}, {Path: "a"}}, "given twice, or also as a parent"},
		{[]File{{Path: "dev/null", Mode: fs.ModeDevice}}, "unsupported type"},
	} {
		_, err := buildDeb(Deb{Name: "x1", Version: "1", Arch: "all", Files: c.files})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("buildDeb(%v) = %v; want %q", c.files, err, c.want)
		}
	}
	// An explicit directory may follow the file that implied it.
	if _, err := buildDeb(Deb{Name: "x1", Version: "1", Arch: "all",
		Files: []File{{Path: "a/b"}, {Path: "a", Mode: fs.ModeDir | 0o700}}}); err != nil {
		t.Errorf("explicit parent after its child: %v", err)
	}
}

// TestMirrorApt lets apt itself read a signed generated mirror from a
// file:// URL, so the generator cannot merely agree with debian.Mirror.
func TestMirrorApt(t *testing.T) {
	if _, err := exec.LookPath("apt-get"); err != nil {
		t.Skip("needs apt-get for the cross-check: ", err)
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root: apt-get update locks its lists directory")
	}
	dir := t.TempDir()
	WriteMirror(t, dir, "testing", "amd64", []Deb{hello, {Name: "libc6", Version: "2.36-9", Arch: "amd64"}})
	keyring := Sign(t, dir, "testing")
	state := t.TempDir()
	for _, d := range []string{"lists/partial", "cache/archives/partial"} {
		if err := os.MkdirAll(filepath.Join(state, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	sources := filepath.Join(state, "sources.list")
	line := "deb [arch=amd64 signed-by=" + keyring + "] file://" + dir + " testing main\n"
	if err := os.WriteFile(sources, []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}
	work := t.TempDir() // apt-get download writes here
	apt := func(args ...string) string {
		t.Helper()
		opts := []string{
			"-o", "Dir::Etc::SourceList=" + sources, "-o", "Dir::Etc::SourceParts=" + state + "/none",
			"-o", "Dir::State::Lists=" + state + "/lists", "-o", "Dir::Cache=" + state + "/cache",
			"-o", "APT::Sandbox::User=root",
		}
		cmd := exec.Command(args[0], append(opts, args[1:]...)...)
		cmd.Env = append(os.Environ(), "LC_ALL=C")
		cmd.Dir = work
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	out := apt("apt-get", "update")
	if strings.Contains(out, "W:") || strings.Contains(out, "E:") {
		t.Errorf("apt-get update warned:\n%s", out)
	}
	show := apt("apt-cache", "show", "hello")
	for _, want := range []string{"Version: 1:2.10-3", "Filename: pool/main/h/hello/hello_2.10-3_amd64.deb", "SHA256: "} {
		if !strings.Contains(show, want) {
			t.Errorf("apt-cache show hello lacks %q:\n%s", want, show)
		}
	}
	// apt-get download checks the .deb against the index's SHA256.
	apt("apt-get", "download", "hello")
	got, err := os.ReadFile(filepath.Join(work, "hello_1%3a2.10-3_amd64.deb"))
	if err != nil || !bytes.Equal(got, BuildDeb(t, hello)) {
		t.Errorf("apt-get download hello = %d bytes, %v; want the %d bytes BuildDeb makes", len(got), err, len(BuildDeb(t, hello)))
	}
}
