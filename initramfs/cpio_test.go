package initramfs

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/u-root/u-root/pkg/cpio"
	"golang.org/x/sys/unix"

	"yakimg/rootfs"
)

var epoch = time.Unix(1700000000, 0)

func sampleTree(t *testing.T) *rootfs.Tree {
	t.Helper()
	tr := rootfs.NewTree()
	for _, e := range []rootfs.Entry{
		{Path: "init", Kind: rootfs.Regular, Perm: 0o755, Data: []byte("#!/bin/sh\necho hi\n")},
		{Path: "dev", Kind: rootfs.Dir, Perm: 0o755},
		{Path: "dev/console", Kind: rootfs.CharDev, Perm: 0o600, Major: 5, Minor: 1},
		{Path: "dev/sda1", Kind: rootfs.BlockDev, Perm: 0o660, GID: 6, Major: 8, Minor: 1},
		{Path: "tmp", Kind: rootfs.Dir, Perm: 0o1777},
		{Path: "usr/bin/passwd", Kind: rootfs.Regular, Perm: 0o4755, Data: []byte("suid")},
		{Path: "home/user/notes", Kind: rootfs.Regular, Perm: 0o640, UID: 1000, GID: 2000, Data: []byte("abc")},
		{Path: "home/user", Kind: rootfs.Dir, Perm: 0o700, UID: 1000, GID: 2000},
		{Path: "bin", Kind: rootfs.Symlink, Perm: 0o777, Target: "usr/bin"},
		{Path: "empty", Kind: rootfs.Regular, Perm: 0o644},
	} {
		if err := tr.Add(e); err != nil {
			t.Fatal(err)
		}
	}
	return tr
}

func writeCPIO(t *testing.T, tr *rootfs.Tree) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := WriteCPIO(&b, tr, epoch); err != nil {
		t.Fatalf("WriteCPIO: %v", err)
	}
	return b.Bytes()
}

func writeZstd(t *testing.T, tr *rootfs.Tree) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := WriteZstd(&b, tr, epoch); err != nil {
		t.Fatalf("WriteZstd: %v", err)
	}
	return b.Bytes()
}

func TestWriteIsDeterministic(t *testing.T) {
	a, b := writeCPIO(t, sampleTree(t)), writeCPIO(t, sampleTree(t))
	if !bytes.Equal(a, b) {
		t.Error("two WriteCPIO runs of the same tree differ")
	}
	za, zb := writeZstd(t, sampleTree(t)), writeZstd(t, sampleTree(t))
	if !bytes.Equal(za, zb) {
		t.Error("two WriteZstd runs of the same tree differ")
	}
	if bytes.Equal(a, writeCPIOAt(t, sampleTree(t), epoch.Add(time.Second))) {
		t.Error("the epoch does not reach the archive")
	}
}

func writeCPIOAt(t *testing.T, tr *rootfs.Tree, at time.Time) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := WriteCPIO(&b, tr, at); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestWriteCPIOReadBack(t *testing.T) {
	tr := sampleTree(t)
	recs, err := cpio.ReadAllRecords(cpio.Newc.Reader(bytes.NewReader(writeCPIO(t, tr))))
	if err != nil {
		t.Fatalf("read archive: %v", err)
	}
	if want := tr.Paths(); len(recs) != len(want) {
		t.Fatalf("archive has %d records; want %d (%v)", len(recs), len(want), want)
	}
	inos := map[uint64]string{}
	for i, r := range recs {
		e, _ := tr.Get(tr.Paths()[i])
		if r.Name != e.Path {
			t.Errorf("record %d = %q; want %q (walk order)", i, r.Name, e.Path)
			continue
		}
		if other, dup := inos[r.Ino]; dup {
			t.Errorf("%s and %s share inode %d", other, r.Name, r.Ino)
		}
		inos[r.Ino] = r.Name
		if r.MTime != uint64(epoch.Unix()) {
			t.Errorf("%s: mtime %d; want %d", r.Name, r.MTime, epoch.Unix())
		}
		if r.UID != uint64(e.UID) || r.GID != uint64(e.GID) {
			t.Errorf("%s: owner %d:%d; want %d:%d", r.Name, r.UID, r.GID, e.UID, e.GID)
		}
		if r.Major != 0 || r.Minor != 0 {
			t.Errorf("%s: dev %d:%d; want 0:0", r.Name, r.Major, r.Minor)
		}
		if got := uint32(r.Mode & 0o7777); got != e.Perm {
			t.Errorf("%s: perm %#o; want %#o", r.Name, got, e.Perm)
		}
		wantType := map[rootfs.Kind]uint64{rootfs.Regular: cpio.S_IFREG, rootfs.Dir: cpio.S_IFDIR,
			rootfs.Symlink: cpio.S_IFLNK, rootfs.CharDev: cpio.S_IFCHR, rootfs.BlockDev: cpio.S_IFBLK}[e.Kind]
		if r.Mode&cpio.S_IFMT != wantType {
			t.Errorf("%s: type %#o; want %#o", r.Name, r.Mode&cpio.S_IFMT, wantType)
		}
		if r.Rmajor != uint64(e.Major) || r.Rminor != uint64(e.Minor) {
			t.Errorf("%s: rdev %d,%d; want %d,%d", r.Name, r.Rmajor, r.Rminor, e.Major, e.Minor)
		}
		content, err := io.ReadAll(io.NewSectionReader(r.ReaderAt, 0, int64(r.FileSize)))
		if err != nil {
			t.Fatalf("%s: read content: %v", r.Name, err)
		}
		want := string(e.Data)
		if e.Kind == rootfs.Symlink {
			want = e.Target
		}
		if string(content) != want {
			t.Errorf("%s: content %q; want %q", r.Name, content, want)
		}
	}
}

func TestWriteCPIOSystemCpioLists(t *testing.T) {
	if _, err := exec.LookPath("cpio"); err != nil {
		t.Skip("needs GNU cpio: apt-get install cpio")
	}
	cmd := exec.Command("cpio", "-itv", "--numeric-uid-gid", "--quiet")
	cmd.Stdin = bytes.NewReader(writeCPIO(t, sampleTree(t)))
	cmd.Env = append(os.Environ(), "TZ=UTC", "LC_ALL=C")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("cpio -itv: %v\n%s", err, out)
	}
	listing := string(out)
	for _, re := range []string{
		`(?m)^crw-------\s+1 0\s+0\s+5,\s+1 Nov 14\s+2023 dev/console$`,
		`(?m)^brw-rw----\s+1 0\s+6\s+8,\s+1 Nov 14\s+2023 dev/sda1$`,
		`(?m)^drwxrwxrwt\s+2 0\s+0\s+0 Nov 14\s+2023 tmp$`,
		`(?m)^-rwsr-xr-x\s+1 0\s+0\s+4 Nov 14\s+2023 usr/bin/passwd$`,
		`(?m)^-rw-r-----\s+1 1000\s+2000\s+3 Nov 14\s+2023 home/user/notes$`,
		`(?m)^drwx------\s+2 1000\s+2000\s+0 Nov 14\s+2023 home/user$`,
		`(?m)^lrwxrwxrwx\s+1 0\s+0\s+7 Nov 14\s+2023 bin -> usr/bin$`,
	} {
		if !regexp.MustCompile(re).MatchString(listing) {
			t.Errorf("cpio -itv output does not match %s:\n%s", re, listing)
		}
	}
	if n := strings.Count(strings.TrimSpace(listing), "\n") + 1; n != sampleTree(t).Len() {
		t.Errorf("cpio lists %d entries; want %d", n, sampleTree(t).Len())
	}
}

func TestWriteCPIOSystemCpioExtracts(t *testing.T) {
	if _, err := exec.LookPath("cpio"); err != nil {
		t.Skip("needs GNU cpio: apt-get install cpio")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root: extracting device nodes and foreign owners")
	}
	dir := t.TempDir()
	cmd := exec.Command("cpio", "-idm", "--quiet", "--no-absolute-filenames")
	cmd.Dir = dir
	cmd.Stdin = bytes.NewReader(writeCPIO(t, sampleTree(t)))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cpio -id: %v\n%s", err, out)
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(dir, "dev/console"), &st); err != nil {
		t.Fatal(err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFCHR || unix.Major(st.Rdev) != 5 || unix.Minor(st.Rdev) != 1 {
		t.Errorf("extracted dev/console: mode %#o rdev %d,%d; want char device 5,1",
			st.Mode, unix.Major(st.Rdev), unix.Minor(st.Rdev))
	}
	if err := unix.Lstat(filepath.Join(dir, "home/user/notes"), &st); err != nil {
		t.Fatal(err)
	}
	if st.Uid != 1000 || st.Gid != 2000 || st.Mode&0o7777 != 0o640 || st.Mtim.Sec != epoch.Unix() {
		t.Errorf("extracted home/user/notes: %d:%d %#o mtime %d; want 1000:2000 0640 mtime %d",
			st.Uid, st.Gid, st.Mode&0o7777, st.Mtim.Sec, epoch.Unix())
	}
}

func TestWriteZstdAcceptedByZstd(t *testing.T) {
	if _, err := exec.LookPath("zstd"); err != nil {
		t.Skip("needs the zstd tool: apt-get install zstd")
	}
	tr := sampleTree(t)
	f := filepath.Join(t.TempDir(), "initramfs.cpio.zst")
	if err := os.WriteFile(f, writeZstd(t, tr), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("zstd", "-t", "-q", f).CombinedOutput(); err != nil {
		t.Fatalf("zstd -t rejects the output: %v\n%s", err, out)
	}
	plain, err := exec.Command("zstd", "-d", "-c", "-q", f).Output()
	if err != nil {
		t.Fatalf("zstd -d: %v", err)
	}
	if !bytes.Equal(plain, writeCPIO(t, tr)) {
		t.Error("zstd -d of WriteZstd output differs from WriteCPIO output")
	}
}

func TestWriteCPIORejectsEpochOutOfRange(t *testing.T) {
	for _, at := range []time.Time{time.Unix(-1, 0), time.Unix(1<<32, 0)} {
		if err := WriteCPIO(io.Discard, sampleTree(t), at); err == nil {
			t.Errorf("WriteCPIO(epoch %d) = nil; want an error", at.Unix())
		}
	}
}
