package resolver

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// dirWatch watches the config directory with inotify. It only notices:
// what changed is worked out by reloading and comparing declarations.
type dirWatch struct {
	f *os.File
}

// watchMask covers every way a declaration file appears, changes or goes,
// including editors' saves through a temporary file and a rename.
const watchMask = unix.IN_CREATE | unix.IN_DELETE | unix.IN_MODIFY | unix.IN_MOVED_TO |
	unix.IN_MOVED_FROM | unix.IN_CLOSE_WRITE | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF

// watchDir starts watching dir; every relevant change signals changed,
// without ever blocking (one pending signal stands for any number).
func watchDir(dir string, changed chan<- struct{}) (*dirWatch, error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("watch %s: inotify: %w", dir, err)
	}
	if _, err := unix.InotifyAddWatch(fd, dir, watchMask); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("watch %s: %w", dir, err)
	}
	// A non-blocking descriptor makes an *os.File that the runtime's poller
	// waits on, so Read parks the goroutine, and Close wakes it.
	w := &dirWatch{f: os.NewFile(uintptr(fd), "inotify:"+dir)}
	go w.read(changed)
	return w, nil
}

func (w *dirWatch) read(changed chan<- struct{}) {
	buf := make([]byte, 4096)
	for {
		n, err := w.f.Read(buf)
		if err != nil {
			return // closed
		}
		if relevant(buf[:n]) {
			select {
			case changed <- struct{}{}:
			default:
			}
		}
	}
}

// relevant reports whether a batch of inotify events touches a file the
// loader reads (a visible *.toml), the directory itself, or was lost to
// an overflow.
func relevant(events []byte) bool {
	for len(events) >= unix.SizeofInotifyEvent {
		ev := (*unix.InotifyEvent)(unsafe.Pointer(&events[0]))
		end := unix.SizeofInotifyEvent + int(ev.Len)
		if end > len(events) {
			return true // cannot happen; reloading is the safe answer
		}
		name := string(bytes.TrimRight(events[unix.SizeofInotifyEvent:end], "\x00"))
		events = events[end:]
		switch {
		case ev.Mask&(unix.IN_Q_OVERFLOW|unix.IN_DELETE_SELF|unix.IN_MOVE_SELF) != 0:
			return true
		case strings.HasSuffix(name, ".toml") && !strings.HasPrefix(name, "."):
			return true
		}
	}
	return false
}

func (w *dirWatch) Close() error {
	return w.f.Close()
}
