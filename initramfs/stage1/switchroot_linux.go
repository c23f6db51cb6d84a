package stage1

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// switchRoot makes dir the root of PID 1 the way switch_root(8) does: the
// kernel file systems move along, dir is moved onto / and chrooted into.
// It checks that init is executable in the new root and returns the old
// root (the initramfs) for freeInitramfs.
//
// Mounts are moved rather than pivot_root'ed: pivot_root would also
// re-root the sentinel, which must keep the initramfs as its root.
// (u-root's mount.SwitchRoot does the same but execs init with argv[0] =
// its path and an empty environment, so it is not used.)
func switchRoot(dir, init string) (*os.File, error) {
	for _, m := range []string{"/dev", "/proc", "/sys"} {
		target := dir + m
		if err := os.MkdirAll(target, 0o755); err != nil {
			return nil, fmt.Errorf("switch_root: %w", err)
		}
		if err := unix.Mount(m, target, "", unix.MS_MOVE, ""); err != nil {
			return nil, fmt.Errorf("switch_root: move %s to %s: %w", m, target, err)
		}
	}
	oldRoot, err := os.Open("/")
	if err != nil {
		return nil, fmt.Errorf("switch_root: %w", err)
	}
	err = func() error {
		if err := unix.Chdir(dir); err != nil {
			return err
		}
		if err := unix.Mount(dir, "/", "", unix.MS_MOVE, ""); err != nil {
			return fmt.Errorf("move %s to /: %w", dir, err)
		}
		if err := unix.Chroot("."); err != nil {
			return fmt.Errorf("chroot: %w", err)
		}
		if err := unix.Chdir("/"); err != nil {
			return err
		}
		if err := unix.Access(init, unix.X_OK); err != nil {
			return fmt.Errorf("init %s in the new root: %w", init, err)
		}
		return nil
	}()
	if err != nil {
		oldRoot.Close()
		return nil, fmt.Errorf("switch_root: %w", err)
	}
	return oldRoot, nil
}

// freeInitramfs deletes everything in the initramfs, which is RAM the
// guest would otherwise never get back. It stays on the initramfs's own
// file system (whatever is mounted below is left alone) and goes on past
// entries it cannot remove, reporting the first such error.
func freeInitramfs(oldRoot *os.File) (int, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(oldRoot.Fd()), &st); err != nil {
		return 0, fmt.Errorf("free initramfs: %w", err)
	}
	return removeContents(int(oldRoot.Fd()), st.Dev)
}

// removeContents removes every entry below the directory dirfd that
// belongs to device dev, returning how many it removed.
func removeContents(dirfd int, dev uint64) (int, error) {
	// A fresh descriptor: reading names moves the offset of the one given.
	fd, err := unix.Openat(dirfd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	d := os.NewFile(uintptr(fd), ".")
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return 0, err
	}
	removed := 0
	var firstErr error
	fail := func(err error) {
		if firstErr == nil {
			firstErr = err
		}
	}
	for _, name := range names {
		var st unix.Stat_t
		if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			fail(fmt.Errorf("stat %s: %w", name, err))
			continue
		}
		if st.Dev != dev {
			continue
		}
		flags := 0
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			sub, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if err != nil {
				fail(fmt.Errorf("open %s: %w", name, err))
				continue
			}
			n, err := removeContents(sub, dev)
			unix.Close(sub)
			removed += n
			if err != nil {
				fail(fmt.Errorf("in %s: %w", name, err))
				continue
			}
			flags = unix.AT_REMOVEDIR
		}
		if err := unix.Unlinkat(dirfd, name, flags); err != nil {
			// A directory that still holds a mount point cannot go.
			fail(fmt.Errorf("remove %s: %w", name, err))
			continue
		}
		removed++
	}
	return removed, firstErr
}
