package debian

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pierrec/lz4/v4"
	"github.com/ulikunitz/xz"
)

// hostIndexes returns the uncompressed amd64 Packages indexes apt has
// downloaded on this host, skipping the test when there are none.
func hostIndexes(tb testing.TB) map[string][]byte {
	tb.Helper()
	paths, err := filepath.Glob("/var/lib/apt/lists/*_binary-amd64_Packages*")
	if err != nil {
		tb.Fatal(err)
	}
	out := map[string][]byte{}
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			tb.Fatal(err)
		}
		var r io.Reader = f
		switch filepath.Ext(p) {
		case "":
		case ".lz4":
			r = lz4.NewReader(f)
		case ".gz":
			if r, err = gzip.NewReader(f); err != nil {
				tb.Fatalf("%s: %v", p, err)
			}
		case ".xz":
			if r, err = xz.NewReader(f); err != nil {
				tb.Fatalf("%s: %v", p, err)
			}
		default:
			f.Close()
			continue
		}
		b, err := io.ReadAll(r)
		f.Close()
		if err != nil {
			tb.Fatalf("read %s: %v", p, err)
		}
		out[p] = b
	}
	if len(out) == 0 {
		tb.Skip("needs apt package lists: no /var/lib/apt/lists/*_binary-amd64_Packages* (run apt-get update)")
	}
	return out
}

func hostIndex(t *testing.T) []Package {
	var all []Package
	for p, b := range hostIndexes(t) {
		pkgs, err := ParsePackages(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		// Cross-check the stanza count against the raw text.
		if n := bytes.Count(b, []byte("\nPackage: ")) + startsWithStanza(b); n != len(pkgs) {
			t.Errorf("%s: parsed %d packages; the file has %d Package lines", p, len(pkgs), n)
		}
		all = append(all, pkgs...)
	}
	return all
}

func startsWithStanza(b []byte) int {
	if bytes.HasPrefix(b, []byte("Package: ")) {
		return 1
	}
	return 0
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
	idx := hostIndexes(b)
	var total int64
	for _, d := range idx {
		total += int64(len(d))
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
