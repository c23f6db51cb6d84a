package handoff

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
)

// Set is what a new instance was handed. Take what you need with Listener,
// Conns and File, read State, then call Ack (or Abort) once. Do not serve
// before Ack returns nil: until then the old instance may take everything
// back. A Set is not safe for concurrent use.
type Set struct {
	l       *link
	entries []entry
	state   []byte
	over    bool
}

type entry struct {
	kind kind
	name string
	f    *os.File // nil once taken or closed
}

// Inherited receives what the old instance hands over, if this process was
// started as the new instance of an upgrade ($YAKIROS_HANDOFF_FD). It
// returns nil, nil when started normally. It blocks until the old instance
// has sent everything; a stuck old instance is the supervisor's to end
// (it stops this process at its timeout).
//
// The variable is removed from the environment, so a second call returns
// nil, nil. On error the old instance has been told and keeps serving;
// the process should exit.
func Inherited() (*Set, error) {
	l, err := envLink(EnvHandoffFD)
	if err != nil {
		return nil, fmt.Errorf("handoff: %w", err)
	}
	if l == nil {
		return nil, nil
	}
	s, err := receive(l)
	if err != nil {
		return nil, fmt.Errorf("handoff: %w", err)
	}
	return s, nil
}

// receive is the new instance's half of the channel protocol up to DONE:
// HELLO out, OFFER FDS* STATE* DONE in. On error it has sent ABORT,
// closed every received descriptor and the channel.
func receive(l *link) (*Set, error) {
	s := &Set{l: l}
	if err := s.receive(); err != nil {
		l.send(encode(abort{Reason: err.Error()}))
		s.closeEntries()
		l.close()
		return nil, err
	}
	return s, nil
}

func (s *Set) receive() error {
	if err := s.l.send(encode(hello{})); err != nil {
		return fmt.Errorf("send HELLO: %w", explain("old instance", err))
	}
	msg, files, err := s.l.recv()
	closeFiles(files)
	if err != nil {
		return fmt.Errorf("waiting for OFFER: %w", explain("old instance", err))
	}
	o, ok := msg.(offer)
	if !ok {
		return unexpected(msg, "OFFER")
	}
	if len(files) > 0 {
		return protoErr("OFFER carried %d descriptors", len(files))
	}
	s.state = make([]byte, 0, min(o.State, 16<<20))
	seen := map[string]bool{}
	for {
		msg, files, err := s.l.recv()
		if err != nil {
			return fmt.Errorf("receiving: %w", explain("old instance", err))
		}
		if _, isFDs := msg.(fdBatch); !isFDs && len(files) > 0 {
			closeFiles(files)
			return protoErr("%v carried %d descriptors", msg.recType(), len(files))
		}
		switch m := msg.(type) {
		case fdBatch:
			err = s.addBatch(m, files, o.FDs, seen)
		case stateChunk:
			if uint64(len(s.state))+uint64(len(m)) > o.State {
				return protoErr("more than the %d state bytes offered", o.State)
			}
			s.state = append(s.state, m...)
		case done:
			if got := uint32(len(s.entries)); got != o.FDs {
				return protoErr("DONE after %d of %d descriptors", got, o.FDs)
			}
			if got := uint64(len(s.state)); got != o.State {
				return protoErr("DONE after %d of %d state bytes", got, o.State)
			}
			return nil
		default:
			return unexpected(msg, "FDS, STATE or DONE")
		}
		if err != nil {
			return err
		}
	}
}

// addBatch takes the descriptors of one FDS record. They must come before
// any state, match the entries in number, and still be at the offset the
// old instance saw: a file whose offset moved is still in use over there.
func (s *Set) addBatch(b fdBatch, files []*os.File, total uint32, seen map[string]bool) error {
	fail := func(err error) error {
		closeFiles(files)
		return err
	}
	switch {
	case len(s.state) > 0:
		return fail(protoErr("FDS after STATE"))
	case len(files) != len(b):
		return fail(protoErr("FDS lists %d descriptors but carried %d", len(b), len(files)))
	case uint64(len(s.entries))+uint64(len(b)) > uint64(total):
		return fail(protoErr("more than the %d descriptors offered", total))
	}
	for i, e := range b {
		if seen[e.Name] {
			return fail(protoErr("name %q used twice", e.Name))
		}
		seen[e.Name] = true
		var got int64
		withFD(files[i], func(fd int) error { got = offset(e.Kind, fd); return nil })
		if got != e.Offset {
			return fail(fmt.Errorf("%v %q is at offset %d, the old instance sent it at %d: it is still being used there", e.Kind, e.Name, got, e.Offset))
		}
	}
	for i, e := range b {
		s.entries = append(s.entries, entry{kind: e.Kind, name: e.Name, f: files[i]})
	}
	return nil
}

func unexpected(msg message, want string) error {
	if a, ok := msg.(abort); ok {
		return fmt.Errorf("the old instance aborted: %s", a.Reason)
	}
	return protoErr("got %v, want %s", msg.recType(), want)
}

// take removes the descriptor called name of kind k from the Set.
func (s *Set) take(k kind, name string) (*os.File, error) {
	var names []string
	for i := range s.entries {
		e := &s.entries[i]
		if e.kind != k {
			continue
		}
		if e.name == name {
			if e.f == nil {
				return nil, fmt.Errorf("handoff: %v %q already taken", k, name)
			}
			f := e.f
			e.f = nil
			return f, nil
		}
		names = append(names, fmt.Sprintf("%q", e.name))
	}
	return nil, fmt.Errorf("handoff: no %v %q was handed over (there are: %s)", k, name, strings.Join(names, ", "))
}

// Listener returns the listening socket called name as a net.Listener.
func (s *Set) Listener(name string) (net.Listener, error) {
	f, err := s.take(kindListener, name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	l, err := net.FileListener(f)
	if err != nil {
		return nil, fmt.Errorf("handoff: listener %q: %w", name, err)
	}
	return l, nil
}

// Conns returns every connection not yet taken, in the order the old
// instance listed them.
func (s *Set) Conns() ([]Conn, error) {
	var conns []Conn
	for i := range s.entries {
		e := &s.entries[i]
		if e.kind != kindConn || e.f == nil {
			continue
		}
		c, err := net.FileConn(e.f)
		e.f.Close()
		e.f = nil
		if err != nil {
			for _, c := range conns {
				c.Conn.Close()
			}
			return nil, fmt.Errorf("handoff: connection %q: %w", e.name, err)
		}
		conns = append(conns, Conn{Name: e.name, Conn: c})
	}
	return conns, nil
}

// File returns the open file called name, at the offset the old instance
// left it.
func (s *Set) File(name string) (*os.File, error) {
	return s.take(kindFile, name)
}

// State returns the old instance's state blob.
func (s *Set) State() []byte { return s.state }

// Ack tells the old instance that everything was adopted and waits for its
// decision. nil: the old instance has let go, everything taken from the
// Set is this process's alone; serve now, then report readiness. An error:
// the old instance keeps serving (or is gone) and this process must not
// use what it took; it should close it and exit. Descriptors not taken from
// the Set are closed either way.
func (s *Set) Ack() error {
	if err := s.finish(); err != nil {
		return err
	}
	defer s.l.close()
	n := uint32(len(s.entries))
	if err := s.l.send(encode(ack{FDs: n, State: uint64(len(s.state))})); err != nil {
		return fmt.Errorf("handoff: send ACK: %w", explain("old instance", err))
	}
	msg, files, err := s.l.recv()
	closeFiles(files)
	if err != nil {
		return fmt.Errorf("handoff: waiting for COMMIT: %w; the old instance keeps its descriptors", explain("old instance", err))
	}
	if _, ok := msg.(commit); !ok {
		return fmt.Errorf("handoff: %w; the old instance keeps its descriptors", unexpected(msg, "COMMIT"))
	}
	return nil
}

// Abort tells the old instance to keep serving, with why as the reason,
// and closes the descriptors not taken from the Set.
func (s *Set) Abort(why error) {
	if s.finish() != nil {
		return
	}
	reason := "the new instance gave up"
	if why != nil {
		reason = why.Error()
	}
	s.l.send(encode(abort{Reason: reason}))
	s.l.close()
}

var errFinished = errors.New("handoff: Ack or Abort was already called")

// finish closes what was not taken and marks the Set as answered.
func (s *Set) finish() error {
	if s.over {
		return errFinished
	}
	s.over = true
	s.closeEntries()
	return nil
}

func (s *Set) closeEntries() {
	for i := range s.entries {
		if f := s.entries[i].f; f != nil {
			f.Close()
			s.entries[i].f = nil
		}
	}
}
