package isolate

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Event is news of one group: OOM kills since the previous event (the
// delta of memory.events oom_kill), or that it has become empty.
type Event struct {
	Group    *Group
	OOMKills int64
	Empty    bool
}

// Watcher reports Events of the groups added to it. The kernel signals a
// change of cgroup.events and memory.events as an inotify IN_MODIFY, so
// nothing polls: one goroutine sleeps in read until a file changes.
type Watcher struct {
	file    *os.File // the inotify descriptor
	pending chan struct{}
	done    chan struct{}

	mu      sync.Mutex
	watches map[int32]*watch
	queue   []Event
}

type watch struct {
	g       *Group
	events  bool  // cgroup.events, else memory.events
	oomSeen int64 // memory.events: oom_kill as last reported
}

// NewWatcher starts a watcher with no groups.
func NewWatcher() (*Watcher, error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("cgroup watcher: inotify: %w", err)
	}
	w := &Watcher{
		file:    os.NewFile(uintptr(fd), "inotify"),
		pending: make(chan struct{}, 1),
		done:    make(chan struct{}),
		watches: map[int32]*watch{},
	}
	go w.read()
	return w, nil
}

// Add watches g from now on: its OOM kills are counted from the current
// oom_kill on.
func (w *Watcher) Add(g *Group) error {
	seen, err := g.OOMKills()
	if err != nil {
		return fmt.Errorf("watch cgroup %s: %w", g.Rel, err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, file := range []string{"cgroup.events", "memory.events"} {
		wd, err := unix.InotifyAddWatch(int(w.file.Fd()), filepath.Join(g.Path, file), unix.IN_MODIFY)
		if errors.Is(err, unix.ENOENT) && file == "memory.events" {
			continue // no memory controller: no OOM kills either
		}
		if err != nil {
			return fmt.Errorf("watch cgroup %s: %s: %w", g.Rel, file, err)
		}
		w.watches[int32(wd)] = &watch{g: g, events: file == "cgroup.events", oomSeen: seen}
	}
	return nil
}

// Forget stops reporting g (its directory's removal ends the watches in
// the kernel).
func (w *Watcher) Forget(g *Group) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for wd, x := range w.watches {
		if x.g == g {
			unix.InotifyRmWatch(int(w.file.Fd()), uint32(wd))
			delete(w.watches, wd)
		}
	}
}

// Pending receives when events may be queued; then call Take.
func (w *Watcher) Pending() <-chan struct{} { return w.pending }

// Take returns the queued events, oldest first, and empties the queue.
func (w *Watcher) Take() []Event {
	w.mu.Lock()
	defer w.mu.Unlock()
	q := w.queue
	w.queue = nil
	return q
}

// Close stops the watcher.
func (w *Watcher) Close() error {
	err := w.file.Close()
	<-w.done
	return err
}

func (w *Watcher) read() {
	defer close(w.done)
	buf := make([]byte, 64*(unix.SizeofInotifyEvent+unix.NAME_MAX+1))
	for {
		n, err := w.file.Read(buf)
		if err != nil {
			return // closed
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			w.changed(ev.Wd, ev.Mask)
			off += unix.SizeofInotifyEvent + int(ev.Len)
		}
	}
}

// changed reads the file behind wd and queues what is news.
func (w *Watcher) changed(wd int32, mask uint32) {
	w.mu.Lock()
	defer w.mu.Unlock()
	x := w.watches[wd]
	if x == nil {
		return
	}
	if mask&unix.IN_IGNORED != 0 {
		delete(w.watches, wd)
		return
	}
	var ev Event
	if x.events {
		busy, err := x.g.Populated()
		if err != nil || busy {
			return
		}
		ev = Event{Group: x.g, Empty: true}
	} else {
		n, err := x.g.OOMKills()
		if err != nil || n <= x.oomSeen {
			return
		}
		ev = Event{Group: x.g, OOMKills: n - x.oomSeen}
		x.oomSeen = n
	}
	w.queue = append(w.queue, ev)
	select {
	case w.pending <- struct{}{}:
	default:
	}
}
