package rootfs

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// recorder collects progress events as lines.
type recorder struct {
	mu    sync.Mutex
	lines []string
}

func (r *recorder) progress(e FetchEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines = append(r.lines, fmt.Sprintf("%s: %s %s %v", e.Package, e.State, e.Note, e.Err))
}

func (r *recorder) mentions(s string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, l := range r.lines {
		if strings.Contains(l, s) {
			return true
		}
	}
	return false
}

func cacheFiles(t *testing.T, c Cache) []string {
	t.Helper()
	es, err := os.ReadDir(filepath.Join(c.Dir, "sha256"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

func TestFetchReal(t *testing.T) {
	p := needApt(t)
	c := Cache{Dir: t.TempDir()}
	var rec recorder
	if err := Fetch(context.Background(), c, Sources{}, []LockedPackage{p}, rec.progress); err != nil {
		skipIfOffline(t, err)
		t.Fatalf("Fetch(%v): %v", p, err)
	}
	deb, err := c.Read(p)
	if err != nil {
		t.Fatalf("Read after Fetch: %v", err)
	}
	if f, err := DebControl(deb); err != nil || f["Package"] != p.Name || f["Version"] != p.Version {
		t.Errorf("fetched .deb control = %v, %v; want %s", f, err, p)
	}
	if !rec.mentions("downloading") || !rec.mentions("fetched") {
		t.Errorf("progress = %q; want a downloading and a fetched line", rec.lines)
	}

	// Already cached: hashed, not downloaded again.
	rec = recorder{}
	if err := Fetch(context.Background(), c, Sources{}, []LockedPackage{p}, rec.progress); err != nil {
		t.Fatalf("second Fetch: %v", err)
	}
	if !rec.mentions("cached") || rec.mentions("downloading") {
		t.Errorf("second Fetch progress = %q; want it cached, not downloaded", rec.lines)
	}

	// A same-size corruption is caught by hashing and repaired.
	deb[100] ^= 0xff
	if err := os.WriteFile(c.Path(p.SHA256), deb, 0o644); err != nil {
		t.Fatal(err)
	}
	rec = recorder{}
	if err := Fetch(context.Background(), c, Sources{}, []LockedPackage{p}, rec.progress); err != nil {
		skipIfOffline(t, err)
		t.Fatalf("Fetch over a corrupted cache file: %v", err)
	}
	if !rec.mentions("lock wants "+p.SHA256) || !rec.mentions("downloading") {
		t.Errorf("Fetch progress over a corrupted file = %q; want the mismatch reported and a new download", rec.lines)
	}
	if _, err := c.Read(p); err != nil {
		t.Errorf("Read after repair: %v", err)
	}
}

func TestFetchVersionGone(t *testing.T) {
	p := needApt(t)
	p.Version = "0.0-gone"
	c := Cache{Dir: t.TempDir()}
	err := Fetch(context.Background(), c, Sources{}, []LockedPackage{p}, nil)
	wantErr(t, "Fetch of a version the archive no longer has", err,
		"package busybox-static version 0.0-gone is no longer offered by the archive",
		"(apt-get: E: Version '0.0-gone' for 'busybox-static' was not found)",
		"refresh the lock with 'yakimg lock --update' after 'apt-get update'")
	if files := cacheFiles(t, c); len(files) != 0 {
		t.Errorf("cache holds %q; want nothing", files)
	}
}

func TestFetchRefusesWrongDigest(t *testing.T) {
	p := needApt(t)
	real := p.SHA256
	p.SHA256 = strings.Repeat("0", 64)
	c := Cache{Dir: t.TempDir()}
	err := Fetch(context.Background(), c, Sources{}, []LockedPackage{p}, nil)
	if err != nil {
		skipIfOffline(t, err)
	}
	wantErr(t, "Fetch with a wrong sha256 in the lock", err, "package "+p.String(), real, p.SHA256)
	if files := cacheFiles(t, c); len(files) != 0 {
		t.Errorf("cache holds %q after a refused download; want nothing", files)
	}
}

func TestFetchReportsEveryFailure(t *testing.T) {
	p := needApt(t)
	gone := p
	gone.Version = "0.0-gone"
	other := p
	other.Name, other.Source = "apk-tools", "alpine"
	err := Fetch(context.Background(), Cache{Dir: t.TempDir()}, Sources{}, []LockedPackage{gone, other}, nil)
	wantErr(t, "Fetch with two bad packages", err,
		"busybox-static version 0.0-gone is no longer offered",
		`apk-tools `+p.Version+`: no [alpine] url in yakimg.toml`)
}
