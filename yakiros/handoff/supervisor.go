package handoff

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// The environment and descriptor numbers of a component with
// handoff = "fd-passing" (docs/HANDOFF.md).
const (
	EnvUpgradeFD = "YAKIROS_UPGRADE_FD" // every instance: its end of the upgrade socket
	EnvHandoffFD = "YAKIROS_HANDOFF_FD" // a new instance only: its end of the channel
	UpgradeFD    = 3
	HandoffFD    = 4
)

// DefaultTimeout is a reasonable time for a whole handoff.
const DefaultTimeout = 10 * time.Second

// resultGrace is how much longer than the handoff's timeout Wait waits for
// RESULT: the old instance gives up at the timeout and then reports.
const resultGrace = 2 * time.Second

// ErrTimeout is wrapped by Wait's error when the old instance sent no
// result in time (it does not speak the protocol, or hangs).
var ErrTimeout = errors.New("no handoff result in time")

// FailedError is a handoff the old instance reports as failed. It keeps
// serving with everything it had.
type FailedError struct{ Reason string }

func (e *FailedError) Error() string {
	return "handoff failed, the old instance keeps serving: " + e.Reason
}

// Control is the supervisor's end of one instance's upgrade socket: a
// SOCK_SEQPACKET socketpair made before the instance starts, whose other
// end the instance gets as descriptor UpgradeFD. A running process cannot
// be given a new descriptor except over a socket it already has; this is
// that socket. One upgrade at a time per Control.
type Control struct {
	l    *link
	mu   sync.Mutex
	next uint32
}

// NewControl makes the upgrade socket of an instance about to be started.
// Give service to the child as descriptor UpgradeFD with
// EnvUpgradeFD=3 in its environment, then close it in the supervisor.
func NewControl() (c *Control, service *os.File, err error) {
	sup, service, err := seqpacketPair("upgrade")
	if err != nil {
		return nil, nil, fmt.Errorf("upgrade socket: %w", err)
	}
	l, err := fileLink(sup)
	if err != nil {
		service.Close()
		return nil, nil, fmt.Errorf("upgrade socket: %w", err)
	}
	return &Control{l: l}, service, nil
}

// Close closes the supervisor's end; the instance's Serve then returns.
func (c *Control) Close() error { return c.l.close() }

func seqpacketPair(name string) (*os.File, *os.File, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("socketpair: %w", err)
	}
	return os.NewFile(uintptr(fds[0]), name), os.NewFile(uintptr(fds[1]), name), nil
}

// Upgrade is one handoff in progress, from the supervisor's side.
type Upgrade struct {
	// New is the new instance's end of the channel: give it to the child
	// as descriptor HandoffFD with EnvHandoffFD=4 in its environment.
	// Wait closes it.
	New *os.File

	c       *Control
	id      uint32
	timeout time.Duration
	start   time.Time
}

// Result is a successful handoff.
type Result struct {
	ID         uint32
	FDs        int           // descriptors the new instance adopted
	StateBytes uint64        // size of the state blob
	Duration   time.Duration // from Upgrade to the old instance's report
}

// Upgrade asks the instance behind c to hand over to a new instance: it
// makes the channel, sends the old instance its end with a REQUEST, and
// returns the new instance's end. The old instance waits for the new one's
// HELLO before it stops serving, so the new instance may be started after
// this call; start it, then call Wait. If starting it fails, call Wait
// anyway: the old instance sees the channel close and reports.
func (c *Control) Upgrade(timeout time.Duration) (*Upgrade, error) {
	ms := timeout.Milliseconds()
	if ms < 1 || ms > 1<<32-1 {
		return nil, fmt.Errorf("upgrade: timeout %v out of range", timeout)
	}
	old, nw, err := seqpacketPair("handoff")
	if err != nil {
		return nil, fmt.Errorf("upgrade: channel: %w", err)
	}
	defer old.Close() // the old instance holds its own copy once sent
	c.mu.Lock()
	c.next++
	id := c.next
	c.mu.Unlock()
	u := &Upgrade{New: nw, c: c, id: id, timeout: timeout, start: time.Now()}
	err = withFD(old, func(fd int) error {
		return c.l.send(encode(request{ID: id, TimeoutMS: uint32(ms)}), fd)
	})
	if err != nil {
		nw.Close()
		if peerGone(err) {
			return nil, errors.New("upgrade: the instance closed its upgrade socket (exited?)")
		}
		return nil, fmt.Errorf("upgrade: send REQUEST: %w", err)
	}
	return u, nil
}

// Wait closes the supervisor's copy of New (so that the old instance sees
// the channel close if the new instance dies) and waits for the old
// instance's report, at most the timeout given to Upgrade plus a grace.
//
// nil error: the new instance owns everything; the old instance exits on
// its own. *FailedError: the old instance keeps serving; stop the new one.
// ErrTimeout or another error: the outcome is unknown; stop the new
// instance, which makes a handoff still in progress fail, and keep the old.
func (u *Upgrade) Wait(ctx context.Context) (Result, error) {
	u.New.Close()
	l := u.c.l
	l.c.SetReadDeadline(u.start.Add(u.timeout + resultGrace))
	defer l.c.SetReadDeadline(time.Time{})
	stop := context.AfterFunc(ctx, func() { l.c.SetReadDeadline(past) })
	defer stop()
	for {
		msg, files, err := l.recv()
		closeFiles(files)
		switch {
		case ctx.Err() != nil:
			return Result{}, ctx.Err()
		case errors.Is(err, os.ErrDeadlineExceeded):
			return Result{}, fmt.Errorf("upgrade %d: %w (%v)", u.id, ErrTimeout, u.timeout+resultGrace)
		case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
			return Result{}, fmt.Errorf("upgrade %d: the old instance closed its upgrade socket before reporting", u.id)
		case err != nil:
			return Result{}, fmt.Errorf("upgrade %d: %w", u.id, err)
		}
		r, ok := msg.(result)
		// A result for an earlier, timed-out upgrade is stale; id 0
		// answers a request the old instance could not read.
		if !ok || (r.ID != u.id && r.ID != 0) {
			continue
		}
		if r.Failed {
			return Result{}, &FailedError{Reason: r.Reason}
		}
		return Result{ID: u.id, FDs: int(r.FDs), StateBytes: r.State, Duration: time.Since(u.start)}, nil
	}
}
