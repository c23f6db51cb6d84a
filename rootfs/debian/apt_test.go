package debian

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// hostIndexFilesOrSkip returns the paths of the host's amd64 Packages
// indexes, skipping the test when apt has none.
func hostIndexFilesOrSkip(tb testing.TB) []string {
	tb.Helper()
	hostFilesOnce.Do(func() { hostFiles, hostFilesErr = hostIndexFiles(context.Background(), "amd64") })
	if hostFilesErr != nil {
		tb.Fatal(hostFilesErr)
	}
	if len(hostFiles) == 0 {
		tb.Skip("needs apt package lists: apt has no amd64 Packages index (run apt-get update)")
	}
	return slices.Clone(hostFiles)
}

// rawIndex is the uncompressed content of a host index file.
func rawIndex(tb testing.TB, p string) []byte {
	tb.Helper()
	f, err := os.Open(p)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	r, err := decompress(p, f)
	if err != nil {
		tb.Fatal(err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		tb.Fatalf("read %s: %v", p, err)
	}
	return b
}

// hostIndex is HostIndex(amd64); each caller gets its own copy of the
// slice.
func hostIndex(tb testing.TB) []Package {
	tb.Helper()
	hostIndexFilesOrSkip(tb)
	hostOnce.Do(func() { hostPkgs, hostErr = HostIndex(context.Background(), "amd64") })
	if hostErr != nil {
		tb.Fatal(hostErr)
	}
	return slices.Clone(hostPkgs)
}

// The host's index files and packages, found and read once per test
// binary: apt-get takes most of a second, the packages tens of megabytes.
var (
	hostFilesOnce sync.Once
	hostFiles     []string
	hostFilesErr  error
	hostOnce      sync.Once
	hostPkgs      []Package
	hostErr       error
)

func TestHostIndex(t *testing.T) {
	paths := hostIndexFilesOrSkip(t)
	got := hostIndex(t)
	// Cross-check the stanza count against the raw text of every file.
	n := 0
	for _, p := range paths {
		b := rawIndex(t, p)
		n += bytes.Count(b, []byte("\nPackage: "))
		if bytes.HasPrefix(b, []byte("Package: ")) {
			n++
		}
	}
	if len(got) != n {
		t.Errorf("HostIndex has %d packages; the %d files have %d Package lines", len(got), len(paths), n)
	}
	if !slices.ContainsFunc(got, func(p Package) bool { return p.Name == "criu" }) {
		t.Errorf("HostIndex(amd64) lacks criu (files %q)", paths)
	}
	if _, err := HostIndex(context.Background(), "s390x"); err == nil || !strings.Contains(err.Error(), "run apt-get update") {
		t.Errorf("HostIndex(s390x) = %v; want no index, run apt-get update", err)
	}
	if _, err := HostIndex(context.Background(), "amd64 *"); err == nil || !strings.Contains(err.Error(), "not an architecture") {
		t.Errorf(`HostIndex("amd64 *") = %v; want not an architecture`, err)
	}
}

// TestHostIndexFilesWithoutApt proves the /var/lib/apt/lists fallback
// finds what apt-get indextargets names.
func TestHostIndexFilesWithoutApt(t *testing.T) {
	want := hostIndexFilesOrSkip(t)
	if !slices.ContainsFunc(want, func(p string) bool { return filepath.Dir(p) == listsDir }) {
		t.Skipf("apt keeps its lists outside %s: %q", listsDir, want)
	}
	t.Setenv("PATH", t.TempDir())
	got, err := hostIndexFiles(context.Background(), "amd64")
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("hostIndexFiles without apt-get = %q, %v; want %q", got, err, want)
	}
}

func TestResolveHostCriu(t *testing.T) {
	idx := hostIndex(t)
	got, err := Resolve(idx, "amd64", []string{"criu"})
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]Package{}
	for _, p := range got {
		names[p.Name] = p
	}
	// The runtime libraries of criu 3.17.1 (platform-facts.md §2).
	for _, want := range []string{"criu", "libc6", "libprotobuf-c1", "libnl-3-200", "libnet1",
		"libnftables1", "libbsd0", "libgnutls30", "libmd0", "libmnl0", "libnftnl11", "libjansson4",
		"libxtables12", "libgmp10", "libnettle8", "libhogweed6", "libp11-kit0", "libidn2-0",
		"libunistring2", "libtasn1-6", "libffi8", "python3", "python3-protobuf"} {
		if _, ok := names[want]; !ok {
			t.Errorf("Resolve(criu) lacks %s; got %q", want, closure(got))
		}
	}
	if c := names["criu"]; !strings.HasPrefix(c.Version, "3.17.1-") || c.Filename == "" || c.SHA256 == "" {
		t.Errorf("criu = %+v; want version 3.17.1-* with Filename and SHA256", c)
	}
	t.Logf("criu closure: %d packages: %q", len(got), closure(got))
}

func TestResolveHostBusyboxStatic(t *testing.T) {
	got, err := Resolve(hostIndex(t), "amd64", []string{"busybox-static"})
	if err != nil {
		t.Fatal(err)
	}
	if names := closure(got); len(names) != 1 || !strings.HasPrefix(names[0], "busybox-static=") {
		t.Errorf("Resolve(busybox-static) = %q; want busybox-static alone", names)
	}
}

func TestResolveHostDeterministic(t *testing.T) {
	idx := hostIndex(t)
	a, err := Resolve(idx, "amd64", []string{"criu", "coreutils"})
	if err != nil {
		t.Fatal(err)
	}
	slices.Reverse(idx)
	b, err := Resolve(idx, "amd64", []string{"coreutils", "criu"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(closure(a), closure(b)) {
		t.Errorf("Resolve depends on index or root order:\n%q\n%q", closure(a), closure(b))
	}
}

func BenchmarkParsePackages(b *testing.B) {
	idx := map[string][]byte{}
	var total int64
	for _, p := range hostIndexFilesOrSkip(b) {
		idx[p] = rawIndex(b, p)
		total += int64(len(idx[p]))
	}
	b.SetBytes(total)
	for b.Loop() {
		for p, d := range idx {
			if _, err := ParsePackages(bytes.NewReader(d)); err != nil {
				b.Fatalf("%s: %v", p, err)
			}
		}
	}
}

// TestCompareVersionsHostDpkg sorts every distinct version in the host's
// indexes with CompareVersions and asks dpkg to confirm a spread of
// neighbouring pairs, so real-world version shapes are covered too.
func TestCompareVersionsHostDpkg(t *testing.T) {
	dpkg, err := exec.LookPath("dpkg")
	if err != nil {
		t.Skip("needs dpkg for the cross-check: ", err)
	}
	var vs []string
	for _, p := range hostIndex(t) {
		vs = append(vs, p.Version)
	}
	slices.Sort(vs)
	vs = slices.Compact(vs)
	slices.SortStableFunc(vs, CompareVersions)
	step := max(1, len(vs)/300)
	for i := 0; i+1 < len(vs); i += step {
		a, b := vs[i], vs[i+1]
		op := "lt"
		if CompareVersions(a, b) == 0 {
			op = "eq"
		}
		if err := exec.Command(dpkg, "--compare-versions", a, op, b).Run(); err != nil {
			t.Errorf("CompareVersions puts %q before %q (%s), dpkg disagrees: %v", a, b, op, err)
		}
	}
}

func TestResolveHostCriuWithoutPython(t *testing.T) {
	got, err := ResolveExcluding(hostIndex(t), "amd64", []string{"criu"}, []string{"python3", "python3-protobuf"})
	if err != nil {
		t.Fatal(err)
	}
	names := closure(got)
	for _, n := range names {
		if strings.HasPrefix(n, "python3") || strings.HasPrefix(n, "libpython3") {
			t.Errorf("closure without python3 still has %s: %q", n, names)
		}
	}
	for _, want := range []string{"criu=", "libnftables1=", "libgnutls30=", "libc6="} {
		if !slices.ContainsFunc(names, func(n string) bool { return strings.HasPrefix(n, want) }) {
			t.Errorf("closure lacks %s: %q", want, names)
		}
	}
	t.Logf("criu closure without python: %d packages: %q", len(got), names)
	if _, err := ResolveExcluding(hostIndex(t), "amd64", []string{"criu"}, []string{"criu"}); err == nil {
		t.Error("excluding a root succeeded")
	}
}
