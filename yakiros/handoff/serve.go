package handoff

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// ErrNotConfigured is returned by Serve in a process started without
// $YAKIROS_UPGRADE_FD (not by YakirOS, or with handoff other than
// "fd-passing").
var ErrNotConfigured = errors.New("handoff: not started with " + EnvUpgradeFD + "; upgrades by descriptor passing are not possible")

// Request is an upgrade the supervisor asked for, given to the prepare
// function of Serve once the new instance is running and has said HELLO.
type Request struct {
	ID       uint32
	Deadline time.Time // the whole handoff must be over by then, or the old instance resumes
}

// Listener, Conn and File name the descriptors of a Bundle. Names are 1 to
// 255 bytes of UTF-8, unique within a Bundle; the new instance asks for
// them by name. Each value must implement syscall.Conn (every *net.TCPConn,
// *net.UnixConn, *net.TCPListener, *net.UnixListener and *os.File does).
type (
	Listener struct {
		Name     string
		Listener net.Listener
	}
	Conn struct {
		Name string
		Conn net.Conn
	}
	File struct {
		Name string
		File *os.File
	}
)

// Bundle is what the old instance hands over. Before returning it from the
// prepare function the service must have stopped using every descriptor in
// it: no Accept on the listeners, no Read on the connections (bytes it has
// read but not answered belong in State), no I/O on the files. A Go service
// stops blocked calls with SetDeadline / SetReadDeadline in the past, which
// consumes no data.
//
// On success Serve closes every descriptor of the Bundle (a Unix listener
// without removing its socket file; the sockets stay open in the new
// instance) and returns nil. On failure it calls Resume, and the service
// owns and uses them again.
type Bundle struct {
	Listeners []Listener
	Conns     []Conn
	Files     []File
	State     []byte          // opaque to YakirOS, any size
	Resume    func(err error) // called with the reason if the handoff fails after prepare returned; may be nil
}

// Serve lets the supervisor upgrade this process: it waits on the upgrade
// socket ($YAKIROS_UPGRADE_FD) for requests and, for each, calls prepare
// once the new instance is running and then hands over the Bundle it
// returns.
//
// Serve returns nil after a successful handoff: the new instance owns the
// descriptors and this process should exit now. A failed handoff does not
// end Serve: the Bundle's Resume is called and Serve waits for the next
// request. If prepare returns an error, nothing is handed over and Resume
// is not called. Serve also returns when ctx is done (ctx.Err()), when the
// supervisor closes the upgrade socket, and at once with ErrNotConfigured
// if the process was not started with an upgrade socket.
func Serve(ctx context.Context, prepare func(*Request) (*Bundle, error)) error {
	ctl, err := envLink(EnvUpgradeFD)
	if err != nil {
		return fmt.Errorf("handoff: %w", err)
	}
	if ctl == nil {
		return ErrNotConfigured
	}
	defer ctl.close()
	return serveControl(ctx, ctl, prepare)
}

func serveControl(ctx context.Context, ctl *link, prepare func(*Request) (*Bundle, error)) error {
	stop := context.AfterFunc(ctx, func() { ctl.c.SetReadDeadline(past) })
	defer stop()
	for {
		msg, files, err := ctl.recv()
		var res result
		switch {
		case ctx.Err() != nil:
			closeFiles(files)
			return ctx.Err()
		case errors.Is(err, io.EOF):
			return errors.New("handoff: the supervisor closed the upgrade socket")
		case errors.Is(err, ErrProtocol):
			// Answered with id 0: the supervisor takes it as the answer to
			// the request it is waiting for.
			res = result{Failed: true, Reason: "refused a request: " + err.Error()}
		case err != nil:
			return fmt.Errorf("handoff: upgrade socket: %w", err)
		default:
			req, ok := msg.(request)
			if !ok || len(files) != 1 {
				closeFiles(files)
				res = result{ID: req.ID, Failed: true, Reason: fmt.Sprintf("refused a request: %v", protoErr("got %v with %d descriptors, want REQUEST with 1", msg.recType(), len(files)))}
				break
			}
			var b *Bundle
			b, res = upgrade(ctx, req, files[0], prepare)
			if !res.Failed {
				b.release()
			}
		}
		// A report that cannot be sent means the supervisor closed its
		// end: after a failure the next read says so; after a success
		// there is nothing left to do here anyway.
		ctl.send(encode(res))
		if !res.Failed {
			return nil
		}
	}
}

// upgrade runs one handoff over the channel end ch as the old instance.
// On failure it has called the Bundle's Resume, if there was a Bundle.
func upgrade(ctx context.Context, req request, ch *os.File, prepare func(*Request) (*Bundle, error)) (*Bundle, result) {
	failed := func(err error) result {
		return result{ID: req.ID, Failed: true, Reason: err.Error()}
	}
	l, err := fileLink(ch)
	if err != nil {
		return nil, failed(fmt.Errorf("channel: %w", err))
	}
	defer l.close()
	deadline := time.Now().Add(time.Duration(req.TimeoutMS) * time.Millisecond)
	l.c.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { l.c.SetDeadline(past) })
	defer stop()
	b, a, err := handOver(l, &Request{ID: req.ID, Deadline: deadline}, prepare)
	if err != nil {
		// Tell the new instance, if it still listens, so it exits instead
		// of serving what this process keeps.
		l.send(encode(abort{Reason: err.Error()}))
		if b != nil && b.Resume != nil {
			b.Resume(err)
		}
		return nil, failed(err)
	}
	return b, result{ID: req.ID, FDs: a.FDs, State: a.State}
}

// handOver is the old instance's half of the channel protocol: HELLO in,
// prepare, OFFER FDS* STATE* DONE out, ACK in, COMMIT out. It returns the
// Bundle once prepare has given one, also with an error.
func handOver(l *link, req *Request, prepare func(*Request) (*Bundle, error)) (*Bundle, ack, error) {
	msg, files, err := l.recv()
	closeFiles(files)
	if err != nil {
		return nil, ack{}, fmt.Errorf("waiting for HELLO: %w", explain("new instance", err))
	}
	if _, ok := msg.(hello); !ok || len(files) > 0 {
		return nil, ack{}, protoErr("got %v with %d descriptors, want HELLO", msg.recType(), len(files))
	}
	b, err := prepare(req)
	if err != nil {
		return nil, ack{}, fmt.Errorf("the service declined: %w", err)
	}
	if b == nil {
		return nil, ack{}, errors.New("the service declined: prepare returned no Bundle")
	}
	out, err := collect(b)
	if err != nil {
		return b, ack{}, err
	}
	defer out.close()
	if err := out.send(l, b.State); err != nil {
		if peerGone(err) {
			// The new instance may have said why before it went.
			if msg, files, rerr := l.recv(); rerr == nil {
				closeFiles(files)
				if a, ok := msg.(abort); ok {
					return b, ack{}, fmt.Errorf("the new instance aborted: %s", a.Reason)
				}
			}
			return b, ack{}, explain("new instance", io.EOF)
		}
		return b, ack{}, fmt.Errorf("send: %w", explain("new instance", err))
	}
	msg, files, err = l.recv()
	closeFiles(files)
	if err != nil {
		return b, ack{}, fmt.Errorf("waiting for ACK: %w", explain("new instance", err))
	}
	switch m := msg.(type) {
	case abort:
		return b, ack{}, fmt.Errorf("the new instance aborted: %s", m.Reason)
	case ack:
		if want := (ack{FDs: uint32(len(out.entries)), State: uint64(len(b.State))}); m != want {
			return b, ack{}, protoErr("ACK for %d descriptors and %d state bytes, sent %d and %d", m.FDs, m.State, want.FDs, want.State)
		}
		// The decision: once COMMIT is queued, the descriptors are the new
		// instance's. If the send fails, it is gone and this one resumes.
		if err := l.send(encode(commit{})); err != nil {
			return b, ack{}, fmt.Errorf("send COMMIT: %w", explain("new instance", io.EOF))
		}
		return b, m, nil
	}
	return b, ack{}, protoErr("got %v, want ACK", msg.recType())
}

// outgoing is a Bundle's descriptors, duplicated so that they stay valid
// however the service's objects behave meanwhile.
type outgoing struct {
	entries []fdEntry
	fds     []int
}

func (o *outgoing) close() {
	for _, fd := range o.fds {
		unix.Close(fd)
	}
}

// collect validates the names of b and duplicates its descriptors, noting
// each one's file offset.
func collect(b *Bundle) (*outgoing, error) {
	type item struct {
		kind kind
		name string
		v    any
	}
	var items []item
	for _, x := range b.Listeners {
		items = append(items, item{kindListener, x.Name, x.Listener})
	}
	for _, x := range b.Conns {
		items = append(items, item{kindConn, x.Name, x.Conn})
	}
	for _, x := range b.Files {
		items = append(items, item{kindFile, x.Name, x.File})
	}
	o := &outgoing{}
	seen := map[string]bool{}
	for _, it := range items {
		if err := o.add(it.kind, it.name, it.v, seen); err != nil {
			o.close()
			return nil, err
		}
	}
	return o, nil
}

func (o *outgoing) add(k kind, name string, v any, seen map[string]bool) error {
	if name == "" || len(name) > maxName || !utf8.ValidString(name) {
		return fmt.Errorf("%v name %q: want 1 to %d bytes of UTF-8", k, name, maxName)
	}
	if seen[name] {
		return fmt.Errorf("%v name %q: used twice", k, name)
	}
	seen[name] = true
	var dup int
	err := withFD(v, func(fd int) (err error) {
		dup, err = unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 3)
		return err
	})
	if err != nil {
		return fmt.Errorf("%v %q: %w", k, name, err)
	}
	o.fds = append(o.fds, dup)
	o.entries = append(o.entries, fdEntry{Kind: k, Name: name, Offset: offset(k, dup)})
	return nil
}

// offset is the file position of fd, a descriptor of kind k: -1 if it has
// none (pipes), and for sockets, which never have one, without asking —
// a system call less per connection on each side of a handoff.
func offset(k kind, fd int) int64 {
	if k != kindFile {
		return -1
	}
	off, err := unix.Seek(fd, 0, io.SeekCurrent)
	if err != nil {
		return -1
	}
	return off
}

// send writes OFFER, the FDS batches, the STATE chunks and DONE.
func (o *outgoing) send(l *link, state []byte) error {
	if err := l.send(encode(offer{FDs: uint32(len(o.entries)), State: uint64(len(state))})); err != nil {
		return err
	}
	for start := 0; start < len(o.entries); {
		end, size := start, headerSize+fdsHead
		for end < len(o.entries) && end-start < maxFDs && size+entrySize+len(o.entries[end].Name) <= maxRecord {
			size += entrySize + len(o.entries[end].Name)
			end++
		}
		if err := l.send(encode(fdBatch(o.entries[start:end])), o.fds[start:end]...); err != nil {
			return err
		}
		start = end
	}
	for len(state) > 0 {
		n := min(len(state), maxChunk)
		if err := l.send(encode(stateChunk(state[:n]))); err != nil {
			return err
		}
		state = state[n:]
	}
	return l.send(encode(done{}))
}

// release closes the Bundle's descriptors after a successful handoff. The
// sockets live on in the new instance; a Unix listener must not remove its
// socket file, which the new instance is now serving.
func (b *Bundle) release() {
	for _, x := range b.Listeners {
		if ul, ok := x.Listener.(*net.UnixListener); ok {
			ul.SetUnlinkOnClose(false)
		}
		x.Listener.Close()
	}
	for _, x := range b.Conns {
		x.Conn.Close()
	}
	for _, x := range b.Files {
		x.File.Close()
	}
}
