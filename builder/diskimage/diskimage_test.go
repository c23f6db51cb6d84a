package diskimage

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"yakimg/rootfs"
)

var testEpoch = time.Unix(1700000000, 0)

// longTarget is longer than the 60 bytes an inode holds inline.
const longTarget = "/very/long/target/path/that/does/not/fit/into/the/inode/itself/at/all"

// sampleTree holds files in nested directories (one directory with enough
// entries to need several blocks) and the special cases: a setuid file
// owned 1000:2000, a setgid directory, a sticky 1777 directory, short and
// long symlinks, symlinks owned by non-root users, an empty file and a
// multi-megabyte file.
func sampleTree(t testing.TB, files int) *rootfs.Tree {
	t.Helper()
	tr := rootfs.NewTree()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for i := range files {
		p := fmt.Sprintf("usr/share/d%02d/sub%d/file%04d.txt", i%17, i%3, i)
		if i%3 == 0 {
			p = fmt.Sprintf("usr/lib/many/entry-with-a-longish-name-%04d", i)
		}
		data := bytes.Repeat([]byte(fmt.Sprintf("file %d\n", i)), i%700)
		must(tr.AddFile(p, 0o644, data))
	}
	must(tr.AddFile("usr/bin/big", 0o755, bytes.Repeat([]byte("0123456789abcdef"), 300_000)))
	must(tr.AddFile("empty", 0o600, nil))
	must(tr.Add(rootfs.Entry{Path: "usr/bin/suid", Kind: rootfs.Regular, Perm: 0o4755, UID: 1000, GID: 2000, Data: []byte("#!/bin/sh\necho suid\n")}))
	must(tr.Add(rootfs.Entry{Path: "srv/shared", Kind: rootfs.Dir, Perm: 0o2775, UID: 0, GID: 2000}))
	must(tr.AddDir("tmp", 0o1777))
	must(tr.AddSymlink("bin", "usr/bin"))
	must(tr.AddSymlink("usr/long", longTarget))
	must(tr.Add(rootfs.Entry{Path: "home/user", Kind: rootfs.Dir, Perm: 0o700, UID: 1000, GID: 1000}))
	must(tr.Add(rootfs.Entry{Path: "home/user/link", Kind: rootfs.Symlink, Perm: 0o777, UID: 1000, GID: 1000, Target: "../../usr/bin/suid"}))
	must(tr.Add(rootfs.Entry{Path: "home/rootlink", Kind: rootfs.Symlink, Perm: 0o777, UID: 3000, GID: 3001, Target: "user"}))
	must(tr.Add(rootfs.Entry{Path: "toplink", Kind: rootfs.Symlink, Perm: 0o777, UID: 4000, GID: 4001, Target: longTarget}))
	return tr
}

func sampleSpec(t testing.TB) Spec {
	return Spec{
		Epoch: testEpoch,
		Seed:  []byte("test-build-1"),
		Partitions: []Partition{
			{Name: "yakimg-root", Label: "root", SizeMiB: 64, Tree: sampleTree(t, 300)},
			{Name: "yakimg-data", Label: "data", SizeMiB: 32},
		},
	}
}

// build writes spec into a fresh temporary directory.
func build(t testing.TB, spec Spec) (string, *Layout) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "disk.img")
	l, err := Write(p, spec)
	if err != nil {
		t.Fatalf("Write: %v", err)
	}
	return p, l
}

func fileHash(t testing.TB, p string) string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// diffSummary describes where two files differ, or returns "".
func diffSummary(t *testing.T, a, b string) string {
	t.Helper()
	x, err := os.ReadFile(a)
	if err != nil {
		t.Fatal(err)
	}
	y, err := os.ReadFile(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(x) != len(y) {
		return fmt.Sprintf("sizes %d and %d", len(x), len(y))
	}
	var first []string
	n := 0
	for i := range x {
		if x[i] != y[i] {
			n++
			if len(first) < 16 {
				first = append(first, fmt.Sprintf("%#x", i))
			}
		}
	}
	if n == 0 {
		return ""
	}
	return fmt.Sprintf("%d bytes differ, first at %s", n, strings.Join(first, " "))
}

// tool runs a host tool and returns its standard output; the test is
// skipped if the tool is not installed.
func tool(t *testing.T, name string, args ...string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("needs %s: %v", name, err)
	}
	cmd := exec.Command(p, args...)
	cmd.Env = append(os.Environ(), "TZ=UTC")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, out, stderr.Bytes())
	}
	return string(out)
}

func TestWriteIsReproducible(t *testing.T) {
	spec := sampleSpec(t)
	a, la := build(t, spec)
	b, lb := build(t, spec)
	if d := diffSummary(t, a, b); d != "" {
		t.Fatalf("two builds of the same spec differ: %s", d)
	}
	if !reflect.DeepEqual(la, lb) {
		t.Errorf("layouts differ: %+v vs %+v", *la, *lb)
	}
}

func TestWriteDependsOnInputs(t *testing.T) {
	base := sampleSpec(t)
	img, _ := build(t, base)
	want := fileHash(t, img)

	seed := sampleSpec(t)
	seed.Seed = []byte("test-build-2")
	// one byte of one file
	content := sampleSpec(t)
	e, _ := content.Partitions[0].Tree.Get("usr/bin/suid")
	data := bytes.Clone(e.Data)
	data[len(data)-2] = 'X'
	if err := content.Partitions[0].Tree.AddFile(e.Path, e.Perm, data); err != nil {
		t.Fatal(err)
	}
	epoch := sampleSpec(t)
	epoch.Epoch = testEpoch.Add(time.Second)

	for name, spec := range map[string]Spec{"seed": seed, "file byte": content, "epoch": epoch} {
		img, _ := build(t, spec)
		if fileHash(t, img) == want {
			t.Errorf("changing the %s did not change the image", name)
		}
	}
}

func TestLayoutMatchesGPT(t *testing.T) {
	img, l := build(t, sampleSpec(t))

	// blkid reads the GPT header, partx the partition entries: real tools,
	// not go-diskfs, so the check is independent of the writer.
	pt := tool(t, "blkid", "-p", "-o", "export", img)
	if !strings.Contains(pt, "PTTYPE=gpt\n") || !strings.Contains(pt, "PTUUID="+l.DiskGUID+"\n") {
		t.Errorf("blkid -p %s:\n%s\nwant PTTYPE=gpt, PTUUID=%s", img, pt, l.DiskGUID)
	}
	parts := tool(t, "partx", "-b", "-o", "NR,START,SECTORS,UUID,NAME,TYPE", "-P", img)
	var want strings.Builder
	for _, p := range l.Partitions {
		fmt.Fprintf(&want, "NR=\"%d\" START=\"%d\" SECTORS=\"%d\" UUID=\"%s\" NAME=\"%s\" TYPE=\"0fc63daf-8483-4772-8e79-3d69d8477de4\"\n",
			p.Index, p.StartBytes/512, p.SizeBytes/512, p.GUID, p.Name)
	}
	if parts != want.String() {
		t.Errorf("partx:\n%s\nwant:\n%s", parts, want.String())
	}

	if len(l.Partitions) != 2 || l.Partitions[0].StartBytes != 1<<20 || l.Partitions[1].StartBytes != 65<<20 || l.Partitions[1].SizeBytes != 32<<20 {
		t.Errorf("partition offsets = %+v; want 1 MiB + 64 MiB, then 65 MiB + 32 MiB", l.Partitions)
	}
	st, err := os.Stat(img)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() != 98<<20 {
		t.Errorf("image size = %d; want %d (1 MiB lead, 96 MiB partitions, 1 MiB tail)", st.Size(), 98<<20)
	}
	for _, p := range l.Partitions {
		fs := tool(t, "blkid", "-p", "-o", "export", "-O", fmt.Sprint(p.StartBytes), img)
		for _, kv := range []string{"TYPE=ext4", "LABEL=" + p.Label, "UUID=" + p.FSUUID} {
			if !strings.Contains(fs, kv+"\n") {
				t.Errorf("blkid of partition %d:\n%s\nwant %s", p.Index, fs, kv)
			}
		}
	}
}

func TestLayoutIdentifiersDeriveFromSeed(t *testing.T) {
	spec := sampleSpec(t)
	l := plan(spec)
	other := spec
	other.Seed = []byte("another")
	o := plan(other)
	seen := map[string]bool{}
	ids := []string{l.DiskGUID, o.DiskGUID}
	for i := range l.Partitions {
		ids = append(ids, l.Partitions[i].GUID, l.Partitions[i].FSUUID, o.Partitions[i].GUID, o.Partitions[i].FSUUID)
	}
	for _, id := range ids {
		if seen[id] {
			t.Errorf("identifier %s derived twice", id)
		}
		seen[id] = true
	}
	if again := plan(spec); !reflect.DeepEqual(l, again) {
		t.Errorf("plan is not a function of the spec: %+v vs %+v", l, again)
	}
}

func TestWriteRejects(t *testing.T) {
	dev := rootfs.NewTree()
	if err := dev.AddCharDev("dev/console", 0o600, 5, 1); err != nil {
		t.Fatal(err)
	}
	ok := Partition{Name: "p", Label: "l", SizeMiB: 16}
	for _, tc := range []struct {
		name string
		spec Spec
		want string
	}{
		{"device node", Spec{Epoch: testEpoch, Seed: []byte("s"), Partitions: []Partition{{Name: "p", SizeMiB: 16, Tree: dev}}}, "dev/console"},
		{"no seed", Spec{Epoch: testEpoch, Partitions: []Partition{ok}}, "seed"},
		{"no partitions", Spec{Epoch: testEpoch, Seed: []byte("s")}, "no partitions"},
		{"long label", Spec{Epoch: testEpoch, Seed: []byte("s"), Partitions: []Partition{{Name: "p", Label: "seventeen-chars-x", SizeMiB: 16}}}, "label"},
		{"epoch before 1970", Spec{Epoch: time.Unix(-1, 0), Seed: []byte("s"), Partitions: []Partition{ok}}, "epoch"},
		{"zero size", Spec{Epoch: testEpoch, Seed: []byte("s"), Partitions: []Partition{{Name: "p"}}}, "size"},
	} {
		p := filepath.Join(t.TempDir(), "disk.img")
		_, err := Write(p, tc.spec)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Write = %v; want an error mentioning %q", tc.name, err, tc.want)
		}
		if _, serr := os.Stat(p); !errors.Is(serr, os.ErrNotExist) {
			t.Errorf("%s: Write left %s behind (stat: %v)", tc.name, p, serr)
		}
	}
}

func TestWriteRefusesExistingFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(p, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	spec := Spec{Epoch: testEpoch, Seed: []byte("s"), Partitions: []Partition{{Name: "p", Label: "l", SizeMiB: 16}}}
	if _, err := Write(p, spec); err == nil {
		t.Fatal("Write over an existing file succeeded")
	}
	if b, err := os.ReadFile(p); err != nil || string(b) != "keep" {
		t.Errorf("existing file = %q, %v; want it untouched", b, err)
	}
}

func BenchmarkWrite(b *testing.B) {
	spec := Spec{
		Epoch:      testEpoch,
		Seed:       []byte("bench"),
		Partitions: []Partition{{Name: "yakimg-root", Label: "root", SizeMiB: 256, Tree: sampleTree(b, 3000)}},
	}
	b.ReportMetric(float64(spec.Partitions[0].Tree.Len()), "entries")
	dir := b.TempDir()
	for i := 0; b.Loop(); i++ {
		p := filepath.Join(dir, fmt.Sprintf("disk%d.img", i))
		if _, err := Write(p, spec); err != nil {
			b.Fatal(err)
		}
		if err := os.Remove(p); err != nil {
			b.Fatal(err)
		}
	}
}
