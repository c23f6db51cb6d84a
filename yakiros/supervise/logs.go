package supervise

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Logs writes every component's output to <Dir>/<name>.log. A file that
// would grow past Max bytes is renamed to <name>.log.1 (replacing the older
// one) and a new one is started, so a component never uses more than about
// 2 × Max of the log directory.
//
// Each process's output is copied by a goroutine of its own; processes of
// the same component (a restarted one, or orphans still holding the old
// pipe) share one open file, so rotation is seen by all of them. Nothing
// here ever waits on the caller, and the caller never waits on a copier.
type Logs struct {
	dir    string
	max    int64
	errorf func(format string, args ...any)

	mu    sync.Mutex          // guards files and their users
	files map[string]*logFile // open files, by component name
}

// NewLogs returns Logs writing into dir with files capped at max bytes
// (max > 0). errorf receives write failures, at most one per process.
func NewLogs(dir string, max int64, errorf func(format string, args ...any)) *Logs {
	return &Logs{dir: dir, max: max, errorf: errorf, files: map[string]*logFile{}}
}

// Path is the current log file of component name.
func (l *Logs) Path(name string) string {
	return filepath.Join(l.dir, name+".log")
}

// logFile is one component's open log, shared by its copiers.
type logFile struct {
	logs  *Logs
	name  string
	users int // guarded by logs.mu

	mu   sync.Mutex // held while writing, so the event loop never waits on it
	f    *os.File
	size int64
}

// open returns name's log file, opening it (for appending) if no copier
// has it open.
func (l *Logs) open(name string) (*logFile, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if lf := l.files[name]; lf != nil {
		lf.users++
		return lf, nil
	}
	if err := os.MkdirAll(l.dir, 0o755); err != nil {
		return nil, fmt.Errorf("log directory: %w", err)
	}
	f, err := os.OpenFile(l.Path(name), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open log: %w", err)
	}
	lf := &logFile{logs: l, name: name, f: f, size: fi.Size(), users: 1}
	l.files[name] = lf
	return lf, nil
}

// release closes lf once its last copier is done with it.
func (l *Logs) release(lf *logFile) {
	l.mu.Lock()
	defer l.mu.Unlock()
	lf.users--
	if lf.users == 0 {
		lf.f.Close()
		delete(l.files, lf.name)
	}
}

// Pipe returns the write end of a pipe whose output goes into name's log
// like a component's own, under the same size cap, without a header: for
// helpers such as readiness checks, whose output belongs next to the
// component's. The caller hands it to a child and closes it.
func (l *Logs) Pipe(name string) (*os.File, error) {
	lf, err := l.open(name)
	if err != nil {
		return nil, fmt.Errorf("log pipe for %s: %w", name, err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		l.release(lf)
		return nil, fmt.Errorf("log pipe for %s: %w", name, err)
	}
	go l.copy(lf, r, "")
	return w, nil
}

// copy writes header (unless empty), then everything read from r until
// every writer of the pipe has closed it. Once writing fails it keeps
// draining r, so the process never blocks on a full pipe.
func (l *Logs) copy(lf *logFile, r *os.File, header string) {
	defer l.release(lf)
	defer r.Close()
	failed := header != "" && lf.note(header) != nil
	buf := make([]byte, 4096)
	for {
		n, err := r.Read(buf)
		if n > 0 && !failed {
			if werr := lf.write(buf[:n]); werr != nil {
				failed = true
				l.errorf("component '%s': %v; dropping its output", lf.name, werr)
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				l.errorf("component '%s': read output: %v", lf.name, err)
			}
			return
		}
	}
}

// note writes one line of the supervisor's own, stamped with epoch seconds.
func (lf *logFile) note(text string) error {
	return lf.write(fmt.Appendf(nil, "[%d] %s\n", time.Now().Unix(), text))
}

// write appends p, rotating first whenever p would not fit: a file is never
// longer than max, and a line is only split when it is longer than max.
func (lf *logFile) write(p []byte) error {
	max := lf.logs.max
	lf.mu.Lock()
	defer lf.mu.Unlock()
	for len(p) > 0 {
		if lf.size > 0 && lf.size+int64(len(p)) > max {
			if err := lf.rotate(); err != nil {
				return err
			}
		}
		n := int64(len(p))
		if n > max {
			// Cut at the last line end that fits, if any.
			n = max
			if i := bytes.LastIndexByte(p[:n], '\n'); i >= 0 {
				n = int64(i) + 1
			}
		}
		w, err := lf.f.Write(p[:n])
		lf.size += int64(w)
		if err != nil {
			return fmt.Errorf("write %s: %w", lf.f.Name(), err)
		}
		p = p[n:]
	}
	return nil
}

// rotate moves the full file to <name>.log.1 and starts an empty one.
func (lf *logFile) rotate() error {
	path := lf.f.Name()
	if err := os.Rename(path, path+".1"); err != nil {
		return fmt.Errorf("rotate %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("rotate %s: %w", path, err)
	}
	lf.f.Close()
	lf.f, lf.size = f, 0
	return nil
}
