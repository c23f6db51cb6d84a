package rootfs

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// tarEntry is one entry of a test tar; data is the content of regular files.
type tarEntry struct {
	hdr  tar.Header
	data string
}

func makeTar(t *testing.T, entries []tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := e.hdr
		h.Size = int64(len(e.data))
		h.ModTime = time.Unix(1700000000, 0) // must not reach the tree
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(e.data)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// compress returns b compressed with comp ("", "gz", "xz" or "zst") and the
// member name suffix that goes with it.
func compress(t *testing.T, comp string, b []byte) ([]byte, string) {
	t.Helper()
	var buf bytes.Buffer
	var err error
	switch comp {
	case "":
		return b, ".tar"
	case "gz":
		w := gzip.NewWriter(&buf)
		if _, err = w.Write(b); err == nil {
			err = w.Close()
		}
	case "xz":
		var w *xz.Writer
		if w, err = xz.NewWriter(&buf); err == nil {
			if _, err = w.Write(b); err == nil {
				err = w.Close()
			}
		}
	case "zst":
		var w *zstd.Encoder
		if w, err = zstd.NewWriter(&buf); err == nil {
			if _, err = w.Write(b); err == nil {
				err = w.Close()
			}
		}
	default:
		t.Fatalf("unknown compression %q", comp)
	}
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), ".tar." + comp
}

// makeAr writes an ar archive the way dpkg-deb does.
func makeAr(members ...arMember) []byte {
	var buf bytes.Buffer
	buf.WriteString("!<arch>\n")
	for _, m := range members {
		fmt.Fprintf(&buf, "%-16s%-12s%-6s%-6s%-8s%-10d`\n", m.name, "0", "0", "0", "100644", len(m.data))
		buf.Write(m.data)
		if len(m.data)%2 == 1 {
			buf.WriteByte('\n')
		}
	}
	return buf.Bytes()
}

const testControl = `Package: demo
Version: 1:2.0-1
Architecture: amd64
Maintainer: Nobody <nobody@example.org>
Depends: libc6 (>= 2.36)
Description: a demo package
 with a second line
 .
 and a paragraph
`

func controlTar(t *testing.T, control string) []byte {
	return makeTar(t, []tarEntry{
		{hdr: tar.Header{Name: "./", Typeflag: tar.TypeDir, Mode: 0o755}},
		{hdr: tar.Header{Name: "./control", Typeflag: tar.TypeReg, Mode: 0o644}, data: control},
	})
}

// makeDeb builds a .deb whose control and data members use comp.
func makeDeb(t *testing.T, comp string, data []tarEntry) []byte {
	t.Helper()
	c, suffix := compress(t, comp, controlTar(t, testControl))
	d, _ := compress(t, comp, makeTar(t, data))
	return makeAr(
		arMember{"debian-binary", []byte("2.0\n")},
		arMember{"control" + suffix, c},
		arMember{"data" + suffix, d},
	)
}

func reg(name string, mode int64, uid, gid int, data string) tarEntry {
	return tarEntry{hdr: tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: mode, Uid: uid, Gid: gid}, data: data}
}

func dir(name string, mode int64, gid int) tarEntry {
	return tarEntry{hdr: tar.Header{Name: name, Typeflag: tar.TypeDir, Mode: mode, Gid: gid}}
}

var longName = "./usr/share/doc/demo/" + strings.Repeat("x", 120)

var sampleData = []tarEntry{
	dir("./", 0o755, 0),
	dir("./bin/", 0o755, 0),
	reg("./bin/tool", 0o4755, 0, 0, "tool binary"),
	{hdr: tar.Header{Name: "./bin/tool-hard", Typeflag: tar.TypeLink, Linkname: "./bin/tool", Mode: 0o4755}},
	{hdr: tar.Header{Name: "./bin/tool-hard2", Typeflag: tar.TypeLink, Linkname: "./bin/tool-hard", Mode: 0o4755}},
	{hdr: tar.Header{Name: "./bin/sym", Typeflag: tar.TypeSymlink, Linkname: "tool", Mode: 0o777}},
	dir("./etc/", 0o750, 42),
	reg("./etc/secret", 0o640, 0, 42, "s3cret\n"),
	dir("./dev/", 0o755, 0),
	{hdr: tar.Header{Name: "./dev/null", Typeflag: tar.TypeChar, Mode: 0o666, Devmajor: 1, Devminor: 3}},
	{hdr: tar.Header{Name: "./dev/sda", Typeflag: tar.TypeBlock, Mode: 0o660, Gid: 6, Devmajor: 8, Devminor: 0}},
	reg(longName, 0o644, 1000, 1000, "long"), // parents absent from the tar: implicit
}

// sampleTree is what UnpackDeb must make of sampleData.
func sampleTree() []Entry {
	return []Entry{
		{Path: "bin", Kind: Dir, Perm: 0o755},
		{Path: "bin/sym", Kind: Symlink, Perm: 0o777, Target: "tool"},
		{Path: "bin/tool", Kind: Regular, Perm: 0o4755, Data: []byte("tool binary")},
		{Path: "bin/tool-hard", Kind: Regular, Perm: 0o4755, Data: []byte("tool binary")},
		{Path: "bin/tool-hard2", Kind: Regular, Perm: 0o4755, Data: []byte("tool binary")},
		{Path: "dev", Kind: Dir, Perm: 0o755},
		{Path: "dev/null", Kind: CharDev, Perm: 0o666, Major: 1, Minor: 3},
		{Path: "dev/sda", Kind: BlockDev, Perm: 0o660, GID: 6, Major: 8},
		{Path: "etc", Kind: Dir, Perm: 0o750, GID: 42},
		{Path: "etc/secret", Kind: Regular, Perm: 0o640, GID: 42, Data: []byte("s3cret\n")},
		{Path: "usr", Kind: Dir, Perm: 0o755},
		{Path: "usr/share", Kind: Dir, Perm: 0o755},
		{Path: "usr/share/doc", Kind: Dir, Perm: 0o755},
		{Path: "usr/share/doc/demo", Kind: Dir, Perm: 0o755},
		{Path: strings.TrimPrefix(longName, "./"), Kind: Regular, Perm: 0o644, UID: 1000, GID: 1000, Data: []byte("long")},
	}
}

func entries(t *testing.T, tr *Tree) []Entry {
	t.Helper()
	var es []Entry
	if err := tr.Walk(func(e *Entry) error { es = append(es, *e); return nil }); err != nil {
		t.Fatal(err)
	}
	return es
}

func diffEntries(t *testing.T, got, want []Entry) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("got %d entries, want %d", len(got), len(want))
	}
	for i := 0; i < len(got) && i < len(want); i++ {
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Errorf("entry %d = %+v; want %+v", i, got[i], want[i])
		}
	}
}

func TestUnpackDebCompressions(t *testing.T) {
	for _, comp := range []string{"", "gz", "xz", "zst"} {
		t.Run("tar"+comp, func(t *testing.T) {
			deb := makeDeb(t, comp, sampleData)
			tr, err := UnpackDeb(deb, nil)
			if err != nil {
				t.Fatalf("UnpackDeb: %v", err)
			}
			diffEntries(t, entries(t, tr), sampleTree())

			fields, err := DebControl(deb)
			if err != nil {
				t.Fatalf("DebControl: %v", err)
			}
			want := map[string]string{
				"Package": "demo", "Version": "1:2.0-1", "Architecture": "amd64",
				"Maintainer":  "Nobody <nobody@example.org>",
				"Depends":     "libc6 (>= 2.36)",
				"Description": "a demo package\nwith a second line\n.\nand a paragraph",
			}
			if !reflect.DeepEqual(fields, want) {
				t.Errorf("DebControl = %q; want %q", fields, want)
			}

			// The fixture must be a real .deb, or the reader was tested
			// against a mistaken idea of the format.
			crossCheckDpkg(t, deb, tr)
		})
	}
}

func TestUnpackDebKeep(t *testing.T) {
	deb := makeDeb(t, "gz", sampleData)
	var asked []string
	tr, err := UnpackDeb(deb, func(p string) bool {
		asked = append(asked, p)
		// tool-hard2's data lives in bin/tool, which is not kept.
		return p == "bin/tool-hard2" || p == "etc/secret"
	})
	if err != nil {
		t.Fatalf("UnpackDeb: %v", err)
	}
	want := []Entry{
		{Path: "bin", Kind: Dir, Perm: 0o755},
		{Path: "bin/tool-hard2", Kind: Regular, Perm: 0o4755, Data: []byte("tool binary")},
		{Path: "etc", Kind: Dir, Perm: 0o750, GID: 42}, // the package's metadata, not an implicit dir's
		{Path: "etc/secret", Kind: Regular, Perm: 0o640, GID: 42, Data: []byte("s3cret\n")},
	}
	diffEntries(t, entries(t, tr), want)
	for _, p := range asked {
		if c, _ := CleanPath(p); c != p || p == "" {
			t.Errorf("keep called with %q; want a clean relative path", p)
		}
	}
	if len(asked) != len(sampleData)-1 {
		t.Errorf("keep called %d times; want %d (every entry but the root)", len(asked), len(sampleData)-1)
	}
}

func TestUnpackDebOddMemberAndGNUNames(t *testing.T) {
	c, _ := compress(t, "gz", controlTar(t, testControl))
	d, _ := compress(t, "", makeTar(t, []tarEntry{reg("./a", 0o644, 0, 0, "a")}))
	deb := makeAr(
		arMember{"debian-binary", []byte("2.0\n")},
		arMember{"_extra", []byte("odd")}, // 3 bytes: forces a padding byte
		arMember{"control.tar.gz/", c},
		arMember{"data.tar/", d},
	)
	tr, err := UnpackDeb(deb, nil)
	if err != nil {
		t.Fatalf("UnpackDeb: %v", err)
	}
	if e, ok := tr.Get("a"); !ok || string(e.Data) != "a" {
		t.Errorf("Get(a) = %+v, %v; want file with data \"a\"", e, ok)
	}
	if f, err := DebControl(deb); err != nil || f["Package"] != "demo" {
		t.Errorf("DebControl = %v, %v; want Package demo", f, err)
	}
}

func TestUnpackDebRefuses(t *testing.T) {
	good := makeDeb(t, "", sampleData)
	withData := func(entries ...tarEntry) []byte {
		return makeDeb(t, "gz", append([]tarEntry{dir("./", 0o755, 0)}, entries...))
	}
	tests := []struct {
		name string
		deb  []byte
		want []string // substrings of the error
	}{
		{"dotdot", withData(reg("./usr/../../etc/passwd", 0o644, 0, 0, "x")),
			[]string{"data.tar.gz", `"./usr/../../etc/passwd"`, ".."}},
		{"dotdot inside", withData(reg("./a/../b", 0o644, 0, 0, "x")),
			[]string{"data.tar.gz", `"./a/../b"`}},
		{"hard link to nothing", withData(tarEntry{hdr: tar.Header{Name: "./bin/x", Typeflag: tar.TypeLink, Linkname: "./bin/missing"}}),
			[]string{"data.tar.gz", `"./bin/x"`, "./bin/missing"}},
		{"hard link escaping", withData(tarEntry{hdr: tar.Header{Name: "./x", Typeflag: tar.TypeLink, Linkname: "../etc/shadow"}}),
			[]string{"data.tar.gz", `"./x"`, "../etc/shadow"}},
		{"fifo", withData(tarEntry{hdr: tar.Header{Name: "./run/fifo", Typeflag: tar.TypeFifo, Mode: 0o600}}),
			[]string{"data.tar.gz", `"./run/fifo"`, "unsupported"}},
		{"file below a file", withData(reg("./a", 0o644, 0, 0, "x"), reg("./a/b", 0o644, 0, 0, "y")),
			[]string{"data.tar.gz", `"./a/b"`}},
		{"not ar", []byte("PK\x03\x04 zip"), []string{"not an ar archive"}},
		{"truncated", good[:len(good)-100], []string{"data.tar", "truncated"}},
		{"no data", makeAr(arMember{"debian-binary", []byte("2.0\n")}, arMember{"control.tar", controlTar(t, testControl)}),
			[]string{"no data.tar member"}},
		{"format 3", makeAr(arMember{"debian-binary", []byte("3.0\n")}), []string{"debian-binary", `"3.0"`}},
		{"bzip2", makeAr(arMember{"debian-binary", []byte("2.0\n")}, arMember{"data.tar.bz2", []byte("BZh")}),
			[]string{"data.tar.bz2", "unsupported compression"}},
		{"corrupt xz", makeAr(arMember{"debian-binary", []byte("2.0\n")}, arMember{"data.tar.xz", []byte("\xfd7zXZ\x00garbage")}),
			[]string{"data.tar.xz"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := UnpackDeb(tc.deb, nil)
			if err == nil {
				t.Fatal("UnpackDeb succeeded; want an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("UnpackDeb error = %q; want it to mention %q", err, w)
				}
			}
		})
	}
}

// busyboxDeb returns a real busybox-static .deb: from apt's archive cache
// if one is there, else downloaded with apt-get.
func busyboxDeb(t *testing.T) []byte {
	t.Helper()
	if m, _ := filepath.Glob("/var/cache/apt/archives/busybox-static_*.deb"); len(m) > 0 {
		b, err := os.ReadFile(m[0])
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	p := needApt(t)
	c := Cache{Dir: t.TempDir()}
	if err := Fetch(context.Background(), c, Sources{}, []LockedPackage{p}, nil); err != nil {
		skipIfOffline(t, err)
		t.Fatalf("Fetch: %v", err)
	}
	b, err := c.Read(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// skipIfOffline skips when err is apt failing to reach the archive.
func skipIfOffline(t *testing.T, err error) {
	t.Helper()
	for _, s := range []string{"Failed to fetch", "Could not resolve", "Temporary failure resolving", "Could not connect", "Connection timed out"} {
		if strings.Contains(err.Error(), s) {
			t.Skip("the Debian archive is unreachable: ", err)
		}
	}
}

func TestUnpackRealBusybox(t *testing.T) {
	deb := busyboxDeb(t)
	tr, err := UnpackDeb(deb, nil)
	if err != nil {
		t.Fatalf("UnpackDeb: %v", err)
	}
	bb, ok := tr.Get("bin/busybox")
	if !ok || bb.Kind != Regular || bb.Perm&0o111 == 0 || !bytes.HasPrefix(bb.Data, []byte("\x7fELF")) {
		t.Fatalf("bin/busybox = %+v, %v; want an executable ELF file", bb, ok)
	}
	if f, err := DebControl(deb); err != nil || f["Package"] != "busybox-static" {
		t.Errorf("DebControl = Package %q, %v; want busybox-static", f["Package"], err)
	}

	crossCheckDpkg(t, deb, tr)
}

// crossCheckDpkg compares every entry of tr with dpkg-deb's own listing of
// deb: path, type, mode, owner and size.
func crossCheckDpkg(t *testing.T, deb []byte, tr *Tree) {
	t.Helper()
	if _, err := exec.LookPath("dpkg-deb"); err != nil {
		t.Log("dpkg-deb not installed; not cross-checked")
		return
	}
	f := filepath.Join(t.TempDir(), "x.deb")
	if err := os.WriteFile(f, deb, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("dpkg-deb", "--contents", f).Output()
	if err != nil {
		t.Fatalf("dpkg-deb --contents: %v", err)
	}
	listed := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		// drwxr-xr-x root/root         0 2026-05-07 20:33 ./bin/
		// hrwsr-xr-x 0/0               0 2023-11-14 22:13 ./bin/tool-hard link to ./bin/tool
		fs := strings.Fields(line)
		name := strings.Join(fs[5:], " ")
		name, _, _ = strings.Cut(name, " -> ")
		name, _, _ = strings.Cut(name, " link to ")
		p, _ := CleanPath(name)
		if p == "" {
			continue
		}
		listed[p] = true
		e, ok := tr.Get(p)
		if !ok {
			t.Errorf("%s listed by dpkg-deb is missing from the tree", p)
			continue
		}
		mode := strings.Replace(fs[0], "h", "-", 1) // a hard link is a file here
		if got := modeString(e); got != mode {
			t.Errorf("%s: mode %s; dpkg-deb says %s", p, got, fs[0])
		}
		if got := fmt.Sprintf("%d/%d", e.UID, e.GID); got != strings.ReplaceAll(fs[1], "root", "0") {
			t.Errorf("%s: owner %s; dpkg-deb says %s", p, got, fs[1])
		}
		if fs[0][0] == '-' {
			if size, _ := strconv.Atoi(fs[2]); size != len(e.Data) {
				t.Errorf("%s: %d bytes; dpkg-deb says %d", p, len(e.Data), size)
			}
		}
		if e.Kind == CharDev || e.Kind == BlockDev {
			if got := fmt.Sprintf("%d,%d", e.Major, e.Minor); got != fs[2] {
				t.Errorf("%s: device %s; dpkg-deb says %s", p, got, fs[2])
			}
		}
	}
	// Only parent directories the package leaves out may be extra.
	for _, p := range tr.Paths() {
		if e, _ := tr.Get(p); !listed[p] && e.Kind != Dir {
			t.Errorf("%s is in the tree but not in the package", p)
		}
	}
}

// modeString renders e's type and permissions the way tar -tv does.
func modeString(e *Entry) string {
	kind := map[Kind]byte{Regular: '-', Dir: 'd', Symlink: 'l', CharDev: 'c', BlockDev: 'b'}[e.Kind]
	s := []byte{kind}
	for i, c := range "rwxrwxrwx" {
		if e.Perm&(1<<(8-i)) != 0 {
			s = append(s, byte(c))
		} else {
			s = append(s, '-')
		}
	}
	for _, sp := range []struct {
		bit uint32
		at  int
		set byte
	}{{0o4000, 3, 's'}, {0o2000, 6, 's'}, {0o1000, 9, 't'}} {
		if e.Perm&sp.bit != 0 {
			if s[sp.at] == 'x' {
				s[sp.at] = sp.set
			} else {
				s[sp.at] = sp.set - 'a' + 'A'
			}
		}
	}
	return string(s)
}
