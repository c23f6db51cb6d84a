package diskimage

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/ext4"
	"github.com/google/uuid"

	"yakimg/rootfs"
)

// extract copies partition p of img into a file of its own, for tools that
// want a bare file system.
func extract(t *testing.T, img string, p PartitionLayout) string {
	t.Helper()
	src, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	out := filepath.Join(t.TempDir(), fmt.Sprintf("part%d.img", p.Index))
	dst, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, io.NewSectionReader(src, p.StartBytes, p.SizeBytes)); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestPartitionsAreFsckClean(t *testing.T) {
	big := rootfs.NewTree()
	if err := big.AddFile("etc/hostname", 0o644, []byte("yakir\n")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		spec Spec
	}{
		{"sample tree and empty partition", sampleSpec(t)},
		// 512 MiB and up get 4 KiB blocks, where the primary superblock
		// sits inside block 0 rather than filling block 1.
		{"4 KiB blocks", Spec{Epoch: testEpoch, Seed: []byte("big"), Partitions: []Partition{{Name: "big", Label: "big", SizeMiB: 512, Tree: big}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img, l := build(t, tc.spec)
			for _, p := range l.Partitions {
				part := extract(t, img, p)
				out := tool(t, "e2fsck", "-fn", part)
				if !strings.Contains(out, "Pass 5") {
					t.Errorf("e2fsck -fn of partition %d did not run all passes:\n%s", p.Index, out)
				}
			}
		})
	}
}

// debugfsStat returns `debugfs -R "stat p"` for the file system in part.
func debugfsStat(t *testing.T, part, p string) string {
	t.Helper()
	out := tool(t, "debugfs", "-R", "stat "+p, part)
	if !strings.Contains(out, "Inode:") {
		t.Fatalf("debugfs stat %s: no inode:\n%s", p, out)
	}
	return out
}

var (
	reMode  = regexp.MustCompile(`Mode:\s+0?(\d+)`)
	reOwner = regexp.MustCompile(`User:\s+(\d+)\s+Group:\s+(\d+)`)
	reTime  = regexp.MustCompile(`(?m)^\s*(a|c|m|cr)time: (0x[0-9a-f]+):([0-9a-f]+)`)
)

// checkTimes asserts that all four inode times in a debugfs stat are epoch,
// encoded as the kernel does: low 32 bits of seconds, then epoch bits and
// nanoseconds.
func checkTimes(t *testing.T, what, stat string, epoch time.Time) {
	t.Helper()
	sec := epoch.Unix()
	wantSec := fmt.Sprintf("0x%08x", uint32(sec))
	wantExtra := fmt.Sprintf("%08x", uint32((sec-int64(int32(uint32(sec))))>>32)&3|uint32(epoch.Nanosecond())<<2)
	ms := reTime.FindAllStringSubmatch(stat, -1)
	if len(ms) != 4 {
		t.Errorf("%s: found %d times in debugfs stat, want 4:\n%s", what, len(ms), stat)
	}
	for _, m := range ms {
		if m[2] != wantSec || m[3] != wantExtra {
			t.Errorf("%s: %stime = %s:%s; want %s:%s", what, m[1], m[2], m[3], wantSec, wantExtra)
		}
	}
}

func TestContentsModesOwnersTimes(t *testing.T) {
	spec := sampleSpec(t)
	tree := spec.Partitions[0].Tree
	img, l := build(t, spec)
	part := extract(t, img, l.Partitions[0])

	// The journal and the root directory come from go-diskfs itself. The
	// root was lent to other owners while symlinks were made in it.
	checkTimes(t, "journal", debugfsStat(t, part, "<8>"), testEpoch)
	root := debugfsStat(t, part, "/")
	checkTimes(t, "/", root, testEpoch)
	if !reMode.MatchString(root) || reMode.FindStringSubmatch(root)[1] != "755" || !strings.Contains(root, "User:     0   Group:     0") {
		t.Errorf("root directory is not 0755 root:root:\n%s", root)
	}
	for _, p := range []string{"usr/bin/suid", "usr/bin/big", "empty", "tmp", "srv/shared", "home/user", "bin", "usr/long", "home/rootlink", "toplink", "usr/lib/many/entry-with-a-longish-name-0297"} {
		e, _ := tree.Get(p)
		stat := debugfsStat(t, part, p)
		checkTimes(t, p, stat, testEpoch)
		wantMode := e.Perm
		if e.Kind == rootfs.Symlink {
			wantMode = 0o777
		}
		if m := reMode.FindStringSubmatch(stat); m == nil || m[1] != strconv.FormatUint(uint64(wantMode), 8) {
			t.Errorf("%s: mode %v; want %o", p, m, wantMode)
		}
		if m := reOwner.FindStringSubmatch(stat); m == nil || m[1] != fmt.Sprint(e.UID) || m[2] != fmt.Sprint(e.GID) {
			t.Errorf("%s: owner %v; want %d:%d", p, m, e.UID, e.GID)
		}
		switch e.Kind {
		case rootfs.Regular:
			if got := tool(t, "debugfs", "-R", "cat "+p, part); got != string(e.Data) {
				t.Errorf("%s: debugfs cat gave %d bytes; want the %d bytes of the tree", p, len(got), len(e.Data))
			}
		case rootfs.Symlink:
			// fast symlinks print `Fast link dest: "x"`; slow ones are read with cat
			target := e.Target
			if !strings.Contains(stat, fmt.Sprintf("Fast link dest: %q", target)) {
				if got := tool(t, "debugfs", "-R", "cat "+p, part); got != target {
					t.Errorf("%s: link target %q; want %q", p, got, target)
				}
			}
		}
	}
}

var reDumpe2fs = regexp.MustCompile(`(?m)^([A-Za-z #]+):\s+(.*)$`)

func dumpe2fs(t *testing.T, args ...string) map[string]string {
	t.Helper()
	out := tool(t, "dumpe2fs", append([]string{"-h"}, args...)...)
	fields := map[string]string{}
	for _, m := range reDumpe2fs.FindAllStringSubmatch(out, -1) {
		fields[m[1]] = m[2]
	}
	return fields
}

func TestSuperblocksAreNormalised(t *testing.T) {
	spec := sampleSpec(t)
	img, l := build(t, spec)
	for i, p := range l.Partitions {
		part := extract(t, img, p)
		// every superblock copy, located by dumpe2fs itself
		locs := regexp.MustCompile(`Backup superblock at (\d+)`).FindAllStringSubmatch(tool(t, "dumpe2fs", part), -1)
		if len(locs) == 0 {
			t.Fatalf("dumpe2fs lists no backup superblocks for partition %d", p.Index)
		}
		blockSize := dumpe2fs(t, part)["Block size"]
		copies := [][]string{nil}
		for _, m := range locs {
			copies = append(copies, []string{"-o", "superblock=" + m[1], "-o", "blocksize=" + blockSize})
		}
		want := map[string]string{
			"Filesystem volume name": spec.Partitions[i].Label,
			"Filesystem UUID":        p.FSUUID,
			"Directory Hash Seed":    deriveUUID(spec.Seed, fmt.Sprintf("ext4-hash-seed/%d", p.Index)).String(),
			"Filesystem created":     testEpoch.UTC().Format(time.ANSIC),
			"Last mount time":        testEpoch.UTC().Format(time.ANSIC),
			"Last write time":        testEpoch.UTC().Format(time.ANSIC),
			"Last checked":           testEpoch.UTC().Format(time.ANSIC),
		}
		for _, c := range copies {
			got := dumpe2fs(t, append(c, part)...)
			for k, v := range want {
				if got[k] != v {
					t.Errorf("partition %d, superblock %v: %s = %q; want %q", p.Index, c, k, got[k], v)
				}
			}
		}
	}
}

func TestTimesBeyond2038(t *testing.T) {
	epoch := time.Date(2040, 2, 29, 12, 0, 0, 123456789, time.UTC)
	tree := rootfs.NewTree()
	if err := tree.AddFile("f", 0o644, []byte("x")); err != nil {
		t.Fatal(err)
	}
	img, l := build(t, Spec{Epoch: epoch, Seed: []byte("2040"), Partitions: []Partition{{Name: "p", Label: "p", SizeMiB: 16, Tree: tree}}})
	part := extract(t, img, l.Partitions[0])
	tool(t, "e2fsck", "-fn", part)
	stat := debugfsStat(t, part, "f")
	checkTimes(t, "f", stat, epoch)
	// debugfs decodes the time itself; it must read back as 2040
	if !strings.Contains(stat, "Feb 29 12:00:00 2040") {
		t.Errorf("debugfs does not decode the mtime as 2040-02-29 12:00:00:\n%s", stat)
	}
	if got := dumpe2fs(t, part)["Filesystem created"]; got != epoch.Format(time.ANSIC) {
		t.Errorf("Filesystem created = %q; want %q", got, epoch.Format(time.ANSIC))
	}
}

// TestInodeChecksumAsGoDiskfs proves that setInodeChecksum computes what
// go-diskfs stores: it recomputes the checksums of inodes go-diskfs has
// just written, untouched by normalisation.
func TestInodeChecksumAsGoDiskfs(t *testing.T) {
	p := filepath.Join(t.TempDir(), "fs.img")
	b, err := file.CreateFromPath(p, 16<<20)
	if err != nil {
		t.Fatal(err)
	}
	fsUUID := uuid.MustParse("0b5c4a5e-8b55-4f1c-9a8f-2f7f0f6b7a11")
	fs, err := ext4.Create(b, 16<<20, 0, 512, &ext4.Params{UUID: &fsUUID})
	if err != nil {
		t.Fatal(err)
	}
	if err := fs.Mkdir("d"); err != nil {
		t.Fatal(err)
	}
	if err := fs.Symlink("a-target", "d/l"); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	g, err := parseGeometry(raw[superblockOffset : superblockOffset+superblockSize])
	if err != nil {
		t.Fatal(err)
	}
	d := raw[(g.firstDataBlock+1)*g.blockSize:]
	table := int64(binary.LittleEndian.Uint32(d[gdInodeTableLo:])) * g.blockSize
	checked := 0
	for n := int64(1); n <= 13; n++ {
		in := raw[table+(n-1)*g.inodeSize : table+n*g.inodeSize]
		if le16(in, inMode) == 0 {
			continue
		}
		want := bytes.Clone(in)
		setInodeChecksum(in, uint32(n), g.checksumSeed)
		if !bytes.Equal(in, want) {
			t.Errorf("inode %d: recomputed checksum %#04x%04x; go-diskfs stored %#04x%04x", n,
				le16(in, inChecksumHi), le16(in, inChecksumLo), le16(want, inChecksumHi), le16(want, inChecksumLo))
		}
		checked++
	}
	if checked < 4 { // root, journal, d, d/l at least
		t.Errorf("checked %d inodes; want at least 4", checked)
	}
}

var reImap = regexp.MustCompile(`Inode (\d+) is part of block group (\d+)\s+located at block (\d+), offset 0x([0-9a-f]+)`)

// TestInodeChecksumsAfterNormalisation checks the inode checksums the
// normalisation recomputed, in more than one block group, at the inode
// locations debugfs reports.
func TestInodeChecksumsAfterNormalisation(t *testing.T) {
	tree := rootfs.NewTree()
	const files = 1100 // more than the 1024 inodes of a 16 MiB file system's first group
	for i := range files {
		if err := tree.AddFile(fmt.Sprintf("d%d/f%03d", i%5, i), 0o644, []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	img, l := build(t, Spec{Epoch: testEpoch, Seed: []byte("groups"), Partitions: []Partition{{Name: "p", Label: "p", SizeMiB: 16, Tree: tree}}})
	part := extract(t, img, l.Partitions[0])
	tool(t, "e2fsck", "-fn", part)
	raw, err := os.ReadFile(part)
	if err != nil {
		t.Fatal(err)
	}
	g, err := parseGeometry(raw[superblockOffset : superblockOffset+superblockSize])
	if err != nil {
		t.Fatal(err)
	}
	groups := map[string]bool{}
	for _, p := range []string{"/", "<8>", "d0", "d0/f000", "d4/f999", "d3/f998", "d2/f352"} {
		m := reImap.FindStringSubmatch(tool(t, "debugfs", "-R", "imap "+p, part))
		if m == nil {
			t.Fatalf("debugfs imap %s: no location", p)
		}
		n, _ := strconv.ParseUint(m[1], 10, 32)
		block, _ := strconv.ParseInt(m[3], 10, 64)
		off, _ := strconv.ParseInt(m[4], 16, 64)
		groups[m[2]] = true
		in := raw[block*g.blockSize+off : block*g.blockSize+off+g.inodeSize]
		want := bytes.Clone(in)
		setInodeChecksum(want, uint32(n), g.checksumSeed)
		if !bytes.Equal(in, want) {
			t.Errorf("%s (inode %d): stored checksum %#04x%04x; want %#04x%04x", p, n,
				le16(in, inChecksumHi), le16(in, inChecksumLo), le16(want, inChecksumHi), le16(want, inChecksumLo))
		}
	}
	if len(groups) < 2 {
		t.Errorf("all checked inodes are in block group(s) %v; the test needs more than one", groups)
	}
}

func TestNormaliseRefusesChecksummedMetadata(t *testing.T) {
	img, l := build(t, Spec{Epoch: testEpoch, Seed: []byte("s"), Partitions: []Partition{{Name: "p", Label: "p", SizeMiB: 16}}})
	raw, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	at := l.Partitions[0].StartBytes + superblockOffset
	sb := raw[at : at+superblockSize]
	if _, err := parseGeometry(sb); err != nil {
		t.Fatalf("parseGeometry of a written superblock: %v", err)
	}
	for _, bit := range []uint32{roCompatMetaCsum, roCompatGDTCsum} {
		c := bytes.Clone(sb)
		binary.LittleEndian.PutUint32(c[sbFeatureROCompat:], le32(c, sbFeatureROCompat)|bit)
		if _, err := parseGeometry(c); err == nil || !strings.Contains(err.Error(), "csum") {
			t.Errorf("parseGeometry with ro_compat bit %#x = %v; want a checksum error", bit, err)
		}
	}
}
