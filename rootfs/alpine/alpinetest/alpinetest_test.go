package alpinetest

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var pkg = Pkg{
	Name: "hello", Version: "1.0-r0",
	Depends: []string{"so:libc.musl-x86_64.so.1"},
	Scripts: map[string]string{".pre-install": "#!/bin/sh\n", ".post-install": "#!/bin/sh\n"},
	Files:   []File{{Path: "usr/bin/hello", Mode: 0o755, Data: "hi"}, {Path: "usr/bin/hi", Link: "hello"}},
}

// TestDeterministic builds the same repository twice: every byte must be
// the same, so tests and lock digests built on it are stable.
func TestDeterministic(t *testing.T) {
	key := NewKey(t, "det.rsa.pub")
	a, b := t.TempDir(), t.TempDir()
	WriteMirror(t, a, "x86_64", key, []Pkg{pkg})
	WriteMirror(t, b, "x86_64", NewKey(t, "det.rsa.pub"), []Pkg{pkg})
	for _, name := range []string{"APKINDEX.tar.gz", "hello-1.0-r0.apk"} {
		x, err := os.ReadFile(filepath.Join(a, "x86_64", name))
		if err != nil {
			t.Fatal(err)
		}
		y, err := os.ReadFile(filepath.Join(b, "x86_64", name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(x, y) {
			t.Errorf("%s differs between two builds", name)
		}
	}
	if NewKey(t, "other-det.rsa.pub").priv.Equal(key.priv) {
		t.Error("two key names share one key")
	}
}

func TestPKGINFO(t *testing.T) {
	info := string(pkgInfo(Pkg{Name: "a", Version: "1", Arch: "noarch", Depends: []string{"b", "c>=1"}, InstallIf: []string{"d", "e"}}, 7, "abc"))
	for _, line := range []string{"pkgname = a\n", "pkgver = 1\n", "arch = noarch\n", "size = 7\n", "depend = b\ndepend = c>=1\n", "install_if = d e\n"} {
		if !strings.Contains(info, line) {
			t.Errorf(".PKGINFO lacks %q:\n%s", line, info)
		}
	}
	if !strings.HasSuffix(info, "datahash = abc\n") {
		t.Errorf(".PKGINFO does not end with the datahash:\n%s", info)
	}
}

func TestBadInput(t *testing.T) {
	for _, files := range [][]File{
		{{Path: "/abs"}},
		{{Path: "../up"}},
		{{Path: "a//b"}},
		{{Path: "x"}, {Path: "x"}},
	} {
		if _, _, err := dataEntries(files); err == nil {
			t.Errorf("dataEntries(%+v) accepted", files)
		}
	}
}
