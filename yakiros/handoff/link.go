package handoff

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// link is one end of a SOCK_SEQPACKET socket: each record is one message,
// so record boundaries and the descriptors attached to a record survive.
type link struct {
	c   *net.UnixConn
	buf []byte
	oob []byte
}

// past is a deadline that has passed: setting it wakes a blocked read or
// write.
var past = time.Unix(1, 0)

func newLink(c *net.UnixConn) *link {
	return &link{c: c, buf: make([]byte, maxRecord), oob: make([]byte, unix.CmsgSpace(maxFDs*4))}
}

// fileLink makes a link of f, which must be an AF_UNIX SOCK_SEQPACKET
// socket, and closes f: the link holds a close-on-exec duplicate.
func fileLink(f *os.File) (*link, error) {
	defer f.Close()
	if err := withFD(f, checkSeqpacket); err != nil {
		return nil, err
	}
	c, err := net.FileConn(f)
	if err != nil {
		return nil, err
	}
	return newLink(c.(*net.UnixConn)), nil
}

// withFD calls fn with the descriptor of v (an *os.File, a net.Conn or a
// net.Listener), without the side effects of (*os.File).Fd.
func withFD(v any, fn func(fd int) error) error {
	sc, ok := v.(syscall.Conn)
	if !ok {
		return fmt.Errorf("%T has no file descriptor", v)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = fn(int(fd)) }); err != nil {
		return err
	}
	return ferr
}

func checkSeqpacket(fd int) error {
	domain, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DOMAIN)
	if err != nil {
		return fmt.Errorf("descriptor %d is not a socket: %w", fd, err)
	}
	typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil {
		return fmt.Errorf("descriptor %d: %w", fd, err)
	}
	if domain != unix.AF_UNIX || typ != unix.SOCK_SEQPACKET {
		return fmt.Errorf("descriptor %d is not an AF_UNIX SOCK_SEQPACKET socket", fd)
	}
	return nil
}

// envLink takes the socket whose descriptor number the environment
// variable name holds. It removes the variable, so that children of the
// service do not believe they were handed something, and replaces the
// descriptor by a close-on-exec duplicate. It returns nil, nil if the
// variable is not set.
func envLink(name string) (*link, error) {
	v, ok := os.LookupEnv(name)
	if !ok {
		return nil, nil
	}
	os.Unsetenv(name)
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 3 {
		return nil, fmt.Errorf("%s=%q: want a descriptor number of 3 or more", name, v)
	}
	if err := checkSeqpacket(fd); err != nil {
		return nil, fmt.Errorf("%s=%d: %w", name, fd, err)
	}
	l, err := fileLink(os.NewFile(uintptr(fd), name))
	if err != nil {
		return nil, fmt.Errorf("%s=%d: %w", name, fd, err)
	}
	return l, nil
}

func (l *link) close() error { return l.c.Close() }

// send writes rec as one message with fds attached.
func (l *link) send(rec []byte, fds ...int) error {
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	n, oobn, err := l.c.WriteMsgUnix(rec, oob, nil)
	if err != nil {
		return err
	}
	if n != len(rec) || oobn != len(oob) {
		return fmt.Errorf("short send: %d of %d bytes, %d of %d control bytes", n, len(rec), oobn, len(oob))
	}
	return nil
}

// recv reads one record and the descriptors it carried (close-on-exec, as
// Go's ReadMsgUnix asks for MSG_CMSG_CLOEXEC). A stateChunk is only valid
// until the next recv. io.EOF means the peer closed its end. On error no
// descriptor is left open.
func (l *link) recv() (message, []*os.File, error) {
	n, oobn, flags, _, err := l.c.ReadMsgUnix(l.buf, l.oob)
	if peerClosed(err) {
		// Linux can report the peer's close ahead of records the peer
		// queued before it closed — the COMMIT an old instance sends just
		// before closing, for one — in two ways: ECONNRESET, once, when
		// the peer closed with records of ours unread; and end of file
		// when the close came between the read's look at the empty queue
		// and its look at the shutdown flag. Neither consumed anything,
		// and once the peer has closed its records are all queued: read
		// again. An empty queue then reads as the end of file.
		n, oobn, flags, _, err = l.c.ReadMsgUnix(l.buf, l.oob)
	}
	if peerClosed(err) {
		return nil, nil, io.EOF
	}
	if err != nil {
		return nil, nil, err
	}
	files, err := rights(l.oob[:oobn])
	switch {
	case err != nil:
	case flags&unix.MSG_CTRUNC != 0:
		err = protoErr("record carried more than %d descriptors", maxFDs)
	case flags&unix.MSG_TRUNC != 0:
		err = protoErr("record longer than %d bytes", maxRecord)
	}
	var msg message
	if err == nil {
		msg, err = decode(l.buf[:n])
	}
	if err != nil {
		closeFiles(files)
		return nil, nil, err
	}
	return msg, files, nil
}

// peerClosed reports whether a read says the peer closed its end: every
// record has a header, so an empty read is the close (Go's ReadMsgUnix
// reports it as io.EOF on a SOCK_SEQPACKET socket), and ECONNRESET is a
// close with records of ours unread.
func peerClosed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)
}

// rights returns the descriptors of every SCM_RIGHTS message in oob.
func rights(oob []byte) ([]*os.File, error) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, fmt.Errorf("control message: %w", err)
	}
	var files []*os.File
	for i := range msgs {
		if msgs[i].Header.Level != unix.SOL_SOCKET || msgs[i].Header.Type != unix.SCM_RIGHTS {
			continue
		}
		fds, err := unix.ParseUnixRights(&msgs[i])
		if err != nil {
			closeFiles(files)
			return nil, fmt.Errorf("control message: %w", err)
		}
		for _, fd := range fds {
			files = append(files, os.NewFile(uintptr(fd), "handoff"))
		}
	}
	return files, nil
}

func closeFiles(files []*os.File) {
	for _, f := range files {
		f.Close()
	}
}

// peerGone reports whether err from a send means the peer closed its end.
func peerGone(err error) bool {
	return errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET)
}

// explain turns a receive error into words about the peer.
func explain(peer string, err error) error {
	switch {
	case errors.Is(err, io.EOF):
		return fmt.Errorf("the %s closed the channel (exited?)", peer)
	case errors.Is(err, os.ErrDeadlineExceeded):
		return fmt.Errorf("no reply from the %s by the deadline", peer)
	}
	return err
}
