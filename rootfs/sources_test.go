package rootfs

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"yakimg/rootfs/debian/debiantest"
)

// debianMirror writes a small signed mirror (an app needing a library in
// two versions that pre-depends on libc, and an Architecture: all tool
// reached through an alternative) and serves it over HTTP.
func debianMirror(t *testing.T) (dir, url, keyring string) {
	t.Helper()
	dir = t.TempDir()
	debiantest.WriteMirror(t, dir, "testing", "amd64", []debiantest.Deb{
		{Name: "app", Version: "1.0-1", Depends: "libfoo1 (>= 2), mail-transport-agent | tool",
			Files: []debiantest.File{{Path: "usr/bin/app", Mode: 0o755, Data: []byte("#!/bin/sh\necho app\n")}}},
		{Name: "libfoo1", Version: "2.1-1", PreDepends: "libc6",
			Files: []debiantest.File{{Path: "usr/lib/x86_64-linux-gnu/libfoo.so.1", Data: []byte("foo")}}},
		{Name: "libfoo1", Version: "1.9-1", PreDepends: "libc6"},
		{Name: "libc6", Version: "2.36-9", Files: []debiantest.File{{Path: "lib/x86_64-linux-gnu/libc.so.6", Data: []byte("libc")}}},
		{Name: "tool", Version: "3", Arch: "all", Files: []debiantest.File{{Path: "usr/share/tool/readme", Data: []byte("tool")}}},
	})
	keyring = debiantest.Sign(t, dir, "testing")
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	t.Cleanup(srv.Close)
	return dir, srv.URL, keyring
}

func TestDebianMirrorLockFetchUnpack(t *testing.T) {
	dir, url, keyring := debianMirror(t)
	for _, base := range []string{url, dir} {
		s := Sources{Debian: DebianSource{Mirrors: []DebianMirror{{URL: base, Suite: "testing", Components: []string{"main"}, Keyring: keyring}}}}
		c := Cache{Dir: t.TempDir()}
		l, err := Resolve(context.Background(), s, Want{Debian: []string{"app"}}, c)
		if err != nil {
			t.Fatalf("Resolve from %s: %v", base, err)
		}
		var names []string
		for _, p := range l.Packages {
			names = append(names, p.Name+"="+p.Version)
		}
		if want := []string{"app=1.0-1", "libc6=2.36-9", "libfoo1=2.1-1", "tool=3"}; !slices.Equal(names, want) {
			t.Fatalf("lock from %s = %q; want %q", base, names, want)
		}
		var rec recorder
		if err := Fetch(context.Background(), c, s, l.Packages, rec.progress); err != nil {
			t.Fatalf("Fetch from %s: %v", base, err)
		}
		if !rec.mentions("fetched") {
			t.Errorf("progress = %q; want fetched events", rec.lines)
		}
		archive, err := c.DataTar(l.Packages[0])
		if err != nil {
			t.Fatal(err)
		}
		tr, err := UnpackTar("app", archive, nil)
		if err != nil {
			t.Fatal(err)
		}
		if e, ok := tr.Get("usr/bin/app"); !ok || e.Perm != 0o755 {
			t.Errorf("app's usr/bin/app = %+v, %v; want mode 0755", e, ok)
		}
	}

	// Excluding the library leaves out what only it needs (libc6).
	s := Sources{Debian: DebianSource{Exclude: []string{"libfoo1"}, Mirrors: []DebianMirror{{URL: url, Suite: "testing", Components: []string{"main"}, Keyring: keyring}}}}
	l, err := Resolve(context.Background(), s, Want{Debian: []string{"app"}}, Cache{})
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Packages) != 2 || l.Packages[0].Name != "app" || l.Packages[1].Name != "tool" {
		t.Errorf("lock excluding libfoo1 = %+v; want app and tool", l.Packages)
	}
}

func TestDebianMirrorRefuses(t *testing.T) {
	dir, url, keyring := debianMirror(t)
	s := Sources{Debian: DebianSource{Mirrors: []DebianMirror{{URL: url, Suite: "testing", Components: []string{"main"}, Keyring: keyring}}}}
	l, err := Resolve(context.Background(), s, Want{Debian: []string{"app"}}, Cache{})
	if err != nil {
		t.Fatal(err)
	}

	// A pool file with one changed byte is refused and never cached.
	victim := l.Packages[0]
	pool := filepath.Join(dir, victim.Filename)
	data, err := os.ReadFile(pool)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)-1] ^= 1
	if err := os.WriteFile(pool, data, 0o644); err != nil {
		t.Fatal(err)
	}
	c := Cache{Dir: t.TempDir()}
	err = Fetch(context.Background(), c, s, l.Packages, nil)
	wantErr(t, "Fetch of a tampered pool file", err, victim.String(), victim.SHA256)
	if c.Has(victim) {
		t.Error("tampered package entered the cache")
	}

	// Locking with another key's keyring is refused.
	other := t.TempDir()
	debiantest.WriteMirror(t, other, "testing", "amd64", []debiantest.Deb{{Name: "x", Version: "1"}})
	s.Debian.Mirrors[0].Keyring = debiantest.Sign(t, other, "testing")
	_, err = Resolve(context.Background(), s, Want{Debian: []string{"app"}}, Cache{})
	wantErr(t, "Resolve with the wrong keyring", err, "InRelease")

	// An unsatisfiable dependency names who needs what.
	s.Debian.Mirrors[0].Keyring = keyring
	_, err = Resolve(context.Background(), s, Want{Debian: []string{"app", "no-such"}}, Cache{})
	wantErr(t, "Resolve of an unknown root", err, `"no-such"`)
}
