package alpine

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestMirrorRoundTrip is the whole path a build takes: generate a signed
// repository, read its index, resolve, fetch and verify every package and
// find the files in the data tars, from a directory, a file:// URL and an
// HTTP server alike.
func TestMirrorRoundTrip(t *testing.T) {
	dir, key, _ := testMirror(t)
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	defer srv.Close()
	keys := keyring(t, key)
	ctx := context.Background()

	var first map[string][]byte
	for _, url := range []string{dir, "file://" + dir, srv.URL, srv.URL + "/"} {
		m := Mirror{URL: url, Arch: testArch}
		index, err := m.Index(ctx, keys)
		if err != nil {
			t.Fatalf("%s: Index: %v", url, err)
		}
		closure, err := Resolve(index, testArch, []string{"alpine-baselayout"})
		if err != nil {
			t.Fatalf("%s: Resolve: %v", url, err)
		}
		want := []string{
			"alpine-baselayout-3.6.5-r0", "alpine-baselayout-data-3.6.5-r0", "alpine-keys-2.4-r1",
			"busybox-1.36.1-r29", "busybox-binsh-1.36.1-r29", "musl-1.2.5-r0",
		}
		if !slices.Equal(names(closure), want) {
			t.Fatalf("%s: closure %v; want %v", url, names(closure), want)
		}
		files := map[string][]byte{}
		for _, p := range closure {
			b, v, err := m.Fetch(ctx, p, keys)
			if err != nil {
				t.Fatalf("%s: Fetch: %v", url, err)
			}
			if int64(len(b)) != p.Size || v.Checksum != p.Checksum {
				t.Errorf("%s: Fetch %s: %d bytes, %s; index says %d, %s", url, p, len(b), v.Checksum, p.Size, p.Checksum)
			}
			for name, e := range readDataTar(t, v) {
				files[name] = []byte(e.data + e.link)
			}
		}
		for name, want := range map[string]string{
			"bin/busybox":               "\x7fELF busybox 1.36.1",
			"bin/sh":                    "/bin/busybox",
			"lib/libc.musl-x86_64.so.1": "ld-musl-x86_64.so.1",
			"etc/hostname":              "localhost\n",
			"etc/apk/keys/test.rsa.pub": "key",
		} {
			if got := string(files[name]); got != want {
				t.Errorf("%s: %s = %q; want %q", url, name, got, want)
			}
		}
		if first == nil {
			first = files
		} else if !mapsEqual(first, files) {
			t.Errorf("%s: files differ from the directory mirror's", url)
		}
	}
}

func mapsEqual(a, b map[string][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || !bytes.Equal(v, w) {
			return false
		}
	}
	return true
}

func TestMirrorRefuses(t *testing.T) {
	dir, key, bs := testMirror(t)
	keys := keyring(t, key)
	ctx := context.Background()
	m := Mirror{URL: dir, Arch: testArch}
	b := built(t, bs, "musl", "1.2.5-r0")
	p := indexEntry(b)

	if got := m.PackagePath(p); got != "x86_64/musl-1.2.5-r0.apk" {
		t.Errorf("PackagePath = %q", got)
	}
	noarch := indexEntry(built(t, bs, "alpine-keys", "2.4-r1"))
	if got := m.PackagePath(noarch); got != "x86_64/alpine-keys-2.4-r1.apk" {
		t.Errorf("PackagePath(noarch) = %q; want it in the mirror's arch directory", got)
	}

	small := p
	small.Size = 100
	if _, _, err := m.Fetch(ctx, small, keys); err == nil || !strings.Contains(err.Error(), "larger than 100 bytes") {
		t.Errorf("Fetch of a file larger than the index says = %v", err)
	}
	if _, err := (Mirror{URL: dir, Arch: "aarch64"}).Index(ctx, keys); err == nil || !strings.Contains(err.Error(), dir) {
		t.Errorf("Index of a missing arch = %v; want an error naming the mirror", err)
	}
	// A package replaced on the mirror by another one with the same name.
	other := built(t, bs, "busybox", "1.36.1-r29")
	if err := os.WriteFile(filepath.Join(dir, m.PackagePath(p)), other.APK, 0o644); err != nil {
		t.Fatal(err)
	}
	big := p
	big.Size = int64(len(other.APK))
	if _, _, err := m.Fetch(ctx, big, keys); err == nil || !strings.Contains(err.Error(), "verify musl-1.2.5-r0: control member: checksum is") {
		t.Errorf("Fetch of a replaced file = %v", err)
	}
	// An index re-signed by a key that is not trusted.
	if _, err := m.Index(ctx, Keyring{}); err == nil || !strings.Contains(err.Error(), "x86_64/APKINDEX.tar.gz: APKINDEX: signed only by test.rsa.pub") {
		t.Errorf("Index with no trusted keys = %v", err)
	}
}
