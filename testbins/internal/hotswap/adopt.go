package hotswap

import (
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"strconv"

	"yakimg/yakiros/handoff"
)

// adopt takes over what the old instance handed over and acknowledges it.
// On error the old instance keeps serving (it was told so, or sees this
// process end) and this process must exit without serving.
func (s *server) adopt(set *handoff.Set) error {
	if err := s.take(set); err != nil {
		set.Abort(err)
		s.closeTaken()
		return fmt.Errorf("adopt the old instance's service: %w", err)
	}
	if err := set.Ack(); err != nil {
		s.closeTaken()
		return err
	}
	files := 0
	for _, name := range sortedKeys(s.conns) {
		if c := s.conns[name]; c.file != nil {
			files++
			off, _ := c.file.Seek(0, io.SeekCurrent)
			// The descriptor's path names the file: a handed-over
			// *os.File has no name of its own.
			path, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", c.file.Fd()))
			if err != nil {
				path = c.file.Name()
			}
			log.Printf("%s: continuing to send %s at offset %d, %d bytes to go", name, path, off, c.left)
		}
	}
	log.Printf("%s %s took over %s from the old instance with %d connections and %d files (pid %d)",
		s.svc.Name, s.version, s.ln.Addr(), len(s.conns), files, os.Getpid())
	return nil
}

// take moves the listener, the connections and their files from set into
// s, as the state describes them.
func (s *server) take(set *handoff.Set) error {
	st, err := decodeState(set.State(), s.svc.Name)
	if err != nil {
		return err
	}
	ln, err := set.Listener(listenerName)
	if err != nil {
		return err
	}
	tl, ok := ln.(*net.TCPListener)
	if !ok {
		ln.Close()
		return fmt.Errorf("listener %q is %s, not TCP", listenerName, ln.Addr().Network())
	}
	s.ln = tl
	conns, err := set.Conns()
	if err != nil {
		return err
	}
	handed := map[string]net.Conn{}
	for _, hc := range conns {
		handed[hc.Name] = hc.Conn
	}
	defer func() {
		for _, nc := range handed {
			nc.Close()
		}
	}()
	for _, cs := range st.Conns {
		nc, ok := handed[cs.Name]
		if !ok {
			return fmt.Errorf("the state describes connection %q, which was not handed over (or twice)", cs.Name)
		}
		delete(handed, cs.Name)
		c := &Conn{name: cs.Name, nc: nc, s: s, in: cs.Pending, out: cs.Unsent, closing: cs.Close}
		s.conns[c.name] = c
		if cs.File == "" {
			continue
		}
		if c.file, err = set.File(cs.File); err != nil {
			return err
		}
		off, err := c.file.Seek(0, io.SeekCurrent)
		if err != nil {
			return fmt.Errorf("file %q: %w", cs.File, err)
		}
		if c.left = cs.FileEnd - off; c.left < 0 {
			return fmt.Errorf("file %q is at offset %d, past the end of its sending at %d", cs.File, off, cs.FileEnd)
		}
	}
	if len(handed) > 0 {
		return fmt.Errorf("%d connections were handed over without state, %q among them", len(handed), sortedKeys(handed)[0])
	}
	s.next, s.gen = st.NextConn, st.Generation+1
	s.version = s.svc.Build + "+" + strconv.Itoa(s.gen)
	return nil
}

// closeTaken closes what take took, after a failed adoption.
func (s *server) closeTaken() {
	if s.ln != nil {
		s.ln.Close()
	}
	for _, c := range s.conns {
		c.release()
	}
}
