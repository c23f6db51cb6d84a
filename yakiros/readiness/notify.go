package readiness

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"yakimg/yakiros/config"
)

// maxParked bounds the notify messages kept for a Watch not yet made.
const maxParked = 16

// message is what a notify datagram says that we act on.
type message struct {
	pid, sid  int // sender; sid is -1 if unknown
	ready     bool
	status    string
	hasStatus bool
	health    string // the last HEALTH= or WATCHDOG= line; "" if none
}

// listenNotify creates the notify socket: a datagram socket with
// SO_PASSCRED set before bind, so every datagram carries the sender's pid
// as checked by the kernel. Mode 0600: only root may send (see
// docs/READINESS.md).
func listenNotify(path string) (*net.UnixConn, error) {
	fail := func(err error) (*net.UnixConn, error) {
		return nil, fmt.Errorf("notify socket %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fail(err)
	}
	// A socket left by an earlier run would make bind fail.
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return fail(errors.New("exists and is not a socket"))
		}
		if err := os.Remove(path); err != nil {
			return fail(err)
		}
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return fail(err)
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PASSCRED, 1); err != nil {
		return fail(fmt.Errorf("SO_PASSCRED: %w", err))
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		return fail(err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		return fail(err)
	}
	c, err := net.FilePacketConn(f)
	if err != nil {
		return fail(err)
	}
	return c.(*net.UnixConn), nil
}

// receive handles notify datagrams until the socket is closed.
func (m *Manager) receive() {
	defer m.wg.Done()
	buf := make([]byte, 4096)
	// Room for the credentials and some file descriptors, which are closed:
	// descriptors that do not fit are discarded by the kernel.
	oob := make([]byte, unix.CmsgSpace(unix.SizeofUcred)+unix.CmsgSpace(16*4))
	for {
		n, oobn, flags, _, err := m.notify.ReadMsgUnix(buf, oob)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			m.opts.Logf("notify socket: %v; no more notify messages are received", err)
			return
		}
		pid, err := sender(oob[:oobn])
		switch {
		case err != nil:
			m.opts.Logf("notify socket: %v; message ignored", err)
		case flags&unix.MSG_TRUNC != 0:
			m.opts.Logf("notify socket: message from pid %d longer than %d bytes ignored", pid, len(buf))
		default:
			m.handle(pid, buf[:n])
		}
	}
}

// sender returns the pid in the credentials of a datagram and closes any
// file descriptors it carried.
func sender(oob []byte) (int, error) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return 0, fmt.Errorf("control message: %w", err)
	}
	pid := 0
	for _, msg := range msgs {
		if fds, err := unix.ParseUnixRights(&msg); err == nil {
			for _, fd := range fds {
				unix.Close(fd)
			}
		}
		if cred, err := unix.ParseUnixCredentials(&msg); err == nil {
			pid = int(cred.Pid)
		}
	}
	if pid == 0 {
		return 0, errors.New("message without sender credentials")
	}
	return pid, nil
}

// parse reads the KEY=VALUE lines we act on; the others (MAINPID,
// STOPPING, ...) are ignored. HEALTH= and WATCHDOG= lines are passed on
// whole, for package health.
func parse(data []byte) message {
	var msg message
	for line := range strings.SplitSeq(string(data), "\n") {
		key, value, _ := strings.Cut(line, "=")
		switch key {
		case "READY":
			msg.ready = msg.ready || value == "1"
		case "STATUS":
			msg.status, msg.hasStatus = value, true
		case "HEALTH", "WATCHDOG":
			msg.health = line
		}
	}
	return msg
}

// handle attributes a message to the watch whose process sent it or whose
// session the sender belongs to (supervise starts every component as a
// session leader). The session is looked up now, while the sender exists.
func (m *Manager) handle(pid int, data []byte) {
	msg := parse(data)
	if !msg.ready && !msg.hasStatus && msg.health == "" {
		return
	}
	msg.pid, msg.sid = pid, -1
	if sid, err := unix.Getsid(pid); err == nil {
		msg.sid = sid
	}
	m.mu.Lock()
	w := m.senderWatchLocked(msg)
	if w != nil {
		m.applyLocked(w, msg)
	} else {
		// Kept in case Watch for its process has not been called yet.
		m.parked = append(m.parked, msg)
		if len(m.parked) > maxParked {
			m.parked = m.parked[1:]
		}
	}
	m.mu.Unlock()
	if w == nil {
		m.opts.Logf("notify socket: message from pid %d (session %d) is not from a watched component", msg.pid, msg.sid)
	}
}

// senderWatchLocked returns the notify watch msg belongs to, if any: its
// process first, else its session's.
func (m *Manager) senderWatchLocked(msg message) *watch {
	var bySession *watch
	for _, w := range m.watches {
		if w.cfg.Method != config.ReadyNotify && w.cfg.Method != config.ReadySignal {
			continue
		}
		if w.pid == msg.pid {
			return w
		}
		if w.pid == msg.sid {
			bySession = w
		}
	}
	return bySession
}

// claimLocked applies the parked messages of w's process or session.
func (m *Manager) claimLocked(w *watch) {
	kept := m.parked[:0]
	for _, msg := range m.parked {
		if msg.pid == w.pid || msg.sid == w.pid {
			m.applyLocked(w, msg)
		} else {
			kept = append(kept, msg)
		}
	}
	m.parked = kept
}

func (m *Manager) applyLocked(w *watch, msg message) {
	if msg.hasStatus {
		m.statusLocked(w, msg.status)
	}
	if msg.health != "" {
		m.healthLocked(w, msg.health)
	}
	if msg.ready && w.waiting && !w.gotReady {
		w.gotReady = true
		close(w.notified)
	}
}

// awaitNotify returns nil once the service sent READY=1.
func (m *Manager) awaitNotify(w *watch) error {
	if m.notify == nil {
		return errors.New("no notify socket configured")
	}
	select {
	case <-w.notified:
		return nil
	case <-w.ctx.Done():
		return w.ctx.Err()
	}
}
