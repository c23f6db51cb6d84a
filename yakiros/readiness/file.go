package readiness

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// dirEvents are the changes that can make a path below the directory appear
// (IN_CREATE, IN_MOVED_TO) or make the directory stop being the right one
// to watch (IN_DELETE_SELF, IN_MOVE_SELF).
const dirEvents = unix.IN_CREATE | unix.IN_MOVED_TO | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF | unix.IN_ONLYDIR

// dirWatcher is one inotify instance shared by every file watch: instances
// are limited per user (128 by default), watches per instance are not
// scarce. Two watches of one directory share its watch descriptor.
type dirWatcher struct {
	f   *os.File
	raw syscall.RawConn // for inotify_add_watch without making f blocking

	mu   sync.Mutex
	byWd map[int]map[*watch]bool
}

func newDirWatcher() (*dirWatcher, error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("inotify: %w", err)
	}
	f := os.NewFile(uintptr(fd), "inotify")
	raw, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("inotify: %w", err)
	}
	return &dirWatcher{f: f, raw: raw, byWd: map[int]map[*watch]bool{}}, nil
}

// add makes every change in dir wake w and returns the watch descriptor.
func (d *dirWatcher) add(dir string, w *watch) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var (
		wd  int
		err error
	)
	if cerr := d.raw.Control(func(fd uintptr) {
		wd, err = unix.InotifyAddWatch(int(fd), dir, dirEvents)
	}); cerr != nil {
		return -1, fmt.Errorf("inotify watch %s: %w", dir, cerr)
	}
	if err != nil {
		return -1, fmt.Errorf("inotify watch %s: %w", dir, err)
	}
	if d.byWd[wd] == nil {
		d.byWd[wd] = map[*watch]bool{}
	}
	d.byWd[wd][w] = true
	return wd, nil
}

// remove undoes add; the kernel watch goes when its last user does.
func (d *dirWatcher) remove(wd int, w *watch) {
	d.mu.Lock()
	defer d.mu.Unlock()
	users := d.byWd[wd]
	if users == nil {
		return // the kernel already dropped it (IN_IGNORED)
	}
	delete(users, w)
	if len(users) == 0 {
		delete(d.byWd, wd)
		d.raw.Control(func(fd uintptr) {
			// EINVAL means the directory is gone and the watch with it.
			unix.InotifyRmWatch(int(fd), uint32(wd))
		})
	}
}

// read wakes the users of every directory that changed, until close.
func (d *dirWatcher) read() {
	buf := make([]byte, 64<<10)
	for {
		n, err := d.f.Read(buf)
		if err != nil {
			return
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			wd := int(int32(binary.NativeEndian.Uint32(buf[off:])))
			mask := binary.NativeEndian.Uint32(buf[off+4:])
			off += unix.SizeofInotifyEvent + int(binary.NativeEndian.Uint32(buf[off+12:]))
			d.dispatch(wd, mask)
		}
	}
}

func (d *dirWatcher) dispatch(wd int, mask uint32) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if mask&unix.IN_Q_OVERFLOW != 0 {
		// Events were lost: everybody looks again.
		for _, users := range d.byWd {
			for w := range users {
				w.wake()
			}
		}
		return
	}
	for w := range d.byWd[wd] {
		w.wake()
	}
	if mask&unix.IN_IGNORED != 0 {
		// The kernel dropped the watch. Watch descriptors are allocated
		// cyclically, so wd is not already in use again.
		delete(d.byWd, wd)
	}
}

func (d *dirWatcher) close() error {
	if err := d.f.Close(); err != nil {
		return fmt.Errorf("close inotify: %w", err)
	}
	return nil
}

// awaitFile returns nil once w.cfg.File exists. The inotify watch sits on
// the nearest existing ancestor of the file, so a service may create the
// file's directory itself; after every (re)arming the file is looked for,
// so nothing created before the watch took effect is missed.
func (m *Manager) awaitFile(w *watch) error {
	path := w.cfg.File
	if path == "" {
		return errors.New("no readiness file given")
	}
	wd := -1
	defer func() {
		if wd >= 0 {
			m.files.remove(wd, w)
		}
	}()
	for {
		if err := w.ctx.Err(); err != nil {
			return err
		}
		nwd, err := m.files.add(nearestDir(filepath.Dir(path)), w)
		if errors.Is(err, unix.ENOENT) {
			continue // the directory went away since the lookup; look again
		}
		if err != nil {
			return fmt.Errorf("readiness file %s: %w", path, err)
		}
		if nwd != wd {
			if wd >= 0 {
				m.files.remove(wd, w)
			}
			wd = nwd
		}
		if _, err := os.Lstat(path); err == nil {
			return nil
		}
		select {
		case <-w.poke:
		case <-w.ctx.Done():
		}
	}
}

// nearestDir returns dir or its nearest ancestor that is a directory.
func nearestDir(dir string) string {
	for {
		if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return dir
		}
		dir = parent
	}
}

// removeStale removes path if it exists.
func removeStale(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove stale %s: %w", path, err)
	}
	return nil
}
