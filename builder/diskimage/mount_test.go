package diskimage

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"yakimg/rootfs"
)

// TestKernelMountMatchesTree loop-mounts the root partition read-only and
// compares every entry with the tree, as the Linux ext4 driver sees it.
func TestKernelMountMatchesTree(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: loop-mounts the image")
	}
	spec := sampleSpec(t)
	tree := spec.Partitions[0].Tree
	img, l := build(t, spec)
	p := l.Partitions[0]
	dir := t.TempDir()
	opts := fmt.Sprintf("ro,loop,offset=%d,sizelimit=%d", p.StartBytes, p.SizeBytes)
	if out, err := exec.Command("mount", "-t", "ext4", "-o", opts, img, dir).CombinedOutput(); err != nil {
		t.Skipf("cannot loop-mount here (%v): %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})

	err := tree.Walk(func(e *rootfs.Entry) error {
		checkMounted(t, filepath.Join(dir, e.Path), e)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// nothing beyond the tree, and the root directory itself is stamped too
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		if rel == "." {
			checkTimesStat(t, "/", p)
			return nil
		}
		if _, ok := tree.Get(rel); !ok {
			t.Errorf("mounted file system has %s, which is not in the tree", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func checkMounted(t *testing.T, p string, e *rootfs.Entry) {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Errorf("%s: %v", e.Path, err)
		return
	}
	st := fi.Sys().(*syscall.Stat_t)
	wantType := map[rootfs.Kind]uint32{rootfs.Regular: syscall.S_IFREG, rootfs.Dir: syscall.S_IFDIR, rootfs.Symlink: syscall.S_IFLNK}[e.Kind]
	wantPerm := e.Perm
	if e.Kind == rootfs.Symlink {
		wantPerm = 0o777
	}
	if st.Mode&syscall.S_IFMT != wantType || st.Mode&0o7777 != wantPerm {
		t.Errorf("%s: mode %o; want %o", e.Path, st.Mode, wantType|wantPerm)
	}
	if st.Uid != e.UID || st.Gid != e.GID {
		t.Errorf("%s: owner %d:%d; want %d:%d", e.Path, st.Uid, st.Gid, e.UID, e.GID)
	}
	checkTimesStat(t, e.Path, p)
	switch e.Kind {
	case rootfs.Regular:
		data, err := os.ReadFile(p)
		if err != nil || !bytes.Equal(data, e.Data) {
			t.Errorf("%s: read %d bytes (%v); want the %d bytes of the tree", e.Path, len(data), err, len(e.Data))
		}
	case rootfs.Symlink:
		if target, err := os.Readlink(p); err != nil || target != e.Target {
			t.Errorf("%s: link target %q (%v); want %q", e.Path, target, err, e.Target)
		}
	}
}

func checkTimesStat(t *testing.T, what, p string) {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Errorf("%s: %v", what, err)
		return
	}
	st := fi.Sys().(*syscall.Stat_t)
	want := syscall.NsecToTimespec(testEpoch.UnixNano())
	for name, ts := range map[string]syscall.Timespec{"atime": st.Atim, "mtime": st.Mtim, "ctime": st.Ctim} {
		if ts != want {
			t.Errorf("%s: %s = %d.%09d; want %d", what, name, ts.Sec, ts.Nsec, testEpoch.Unix())
		}
	}
}
