// Package hotswap runs a TCP test service so that graph-resolver can
// upgrade it with handoff = "fd-passing" (yakiros/handoff,
// docs/HANDOFF.md): on an upgrade request it stops accepting and reading,
// and hands its listener, every established connection, the files it is
// sending and what each connection was in the middle of to the new
// instance, which carries on where it stopped. Clients see no reset and
// lose no byte.
//
// The service only writes the handler of one connection (see Conn); the
// package accepts, pauses, hands over, adopts, reports readiness and stops.
// Replies carry Conn.Version: the build, then "+" and the number of
// handoffs since the service was last started afresh ("v1", "v1+1",
// "v2+2"...), so a client sees each upgrade even when the same binary is
// run again.
package hotswap

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"maps"
	"net"
	"os"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"time"

	"yakimg/yakiros/handoff"
)

// Service is one TCP test service.
type Service struct {
	// Name is the program's name, in the log and in the state blob: only
	// an instance of the same name adopts what this one hands over.
	Name string
	// Build is this build's version, the first part of Conn.Version.
	Build string
	// Handle serves one connection, starting at a request boundary, until
	// it ends: it returns io.EOF when the client has gone, nil after
	// Finish, or the error of a Conn call, which it must return as soon as
	// one fails. The connection is closed after it (unless handed over).
	Handle func(*Conn) error
}

// versionSyntax is what a version may look like: one word, so that
// "<version> <line>" replies split cleanly.
var versionSyntax = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]*$`)

// Names of the descriptors in a handoff.
const (
	listenerName = "listener"
	fileSuffix   = ".file" // after the connection's name
)

// past is a deadline that has passed: it wakes a blocked Accept, Read or
// Write, which then returns without consuming anything.
var past = time.Unix(1, 0)

// errLetGo ends a handler whose connection the service has let go of:
// handed over, or stopping.
var errLetGo = errors.New("the service let the connection go")

// Run serves until ctx ends (then it closes every connection and returns
// nil) or until the service has been handed to a new instance (then it
// returns nil at once; the process should exit). Started as the new
// instance of an upgrade ($YAKIROS_HANDOFF_FD) it adopts the old instance's
// listener and connections instead of listening on addr. Once it serves it
// sends READY=1 to notifySocket, if that is not "".
func (s *Service) Run(ctx context.Context, addr, notifySocket string) error {
	if !versionSyntax.MatchString(s.Build) {
		return fmt.Errorf("version %q: want one word of letters, digits, '.', '_', '+' and '-', starting with a letter or digit", s.Build)
	}
	srv := &server{svc: s, conns: map[string]*Conn{}}
	srv.cond = sync.NewCond(&srv.mu)
	set, err := handoff.Inherited()
	if err != nil {
		return err
	}
	if set != nil {
		if err := srv.adopt(set); err != nil {
			return err
		}
	} else {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("listen %s: %w", addr, err)
		}
		srv.ln = ln.(*net.TCPListener)
		srv.version = s.Build
		log.Printf("%s %s listening on %s (pid %d)", s.Name, srv.version, srv.ln.Addr(), os.Getpid())
	}
	srv.start()

	serveCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- handoff.Serve(serveCtx, srv.prepare) }()
	if notifySocket != "" {
		if err := notifyReady(notifySocket, "listening on "+srv.ln.Addr().String()); err != nil {
			cancel()
			<-served
			srv.stop()
			return err
		}
		log.Printf("told %s it is ready", notifySocket)
	}
	for {
		select {
		case err := <-served:
			if err == nil {
				srv.letGo()
				return nil
			}
			if !errors.Is(err, handoff.ErrNotConfigured) && ctx.Err() == nil {
				log.Printf("upgrades by handoff are no longer possible: %v", err)
			}
			served = nil
		case <-ctx.Done():
			// A handoff under way fails and resumes when ctx ends, unless
			// it committed just now: then the connections are not ours.
			if served != nil && <-served == nil {
				srv.letGo()
				return nil
			}
			srv.stop()
			log.Printf("%s %s stopped", s.Name, srv.version)
			return nil
		}
	}
}

// phase is what the server's goroutines are allowed to do.
type phase int

const (
	running  phase = iota
	paused         // a handoff is being prepared: park and wait
	letGo          // handed over: end without closing anything
	stopping       // ctx ended: end, closing everything
)

// server is the running state of a Service.
type server struct {
	svc     *Service
	ln      *net.TCPListener
	version string
	gen     int

	mu    sync.Mutex
	cond  *sync.Cond // signalled when phase or busy change
	phase phase
	busy  int // goroutines (acceptor, handlers) not parked
	conns map[string]*Conn
	next  uint64 // number of the next connection's name
	wg    sync.WaitGroup
}

// start runs the acceptor and a handler for every connection already there
// (adopted ones).
func (s *server) start() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.busy++
	s.wg.Add(1)
	go s.accept()
	for _, name := range sortedKeys(s.conns) {
		s.busy++
		s.wg.Add(1)
		go s.serve(s.conns[name])
	}
}

// sortedKeys is the names of m in order: what is handed over, and the
// order it is served in, does not depend on map order.
func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}

func (s *server) accept() {
	defer s.done()
	for {
		nc, err := s.ln.Accept()
		if err == nil {
			s.add(nc)
			continue
		}
		s.mu.Lock()
		ph := s.phase
		s.mu.Unlock()
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded), ph == paused:
			if s.park() != nil {
				return
			}
		case ph != running:
			return
		default:
			// Out of descriptors, most likely: clients wait in the backlog.
			log.Printf("accept: %v", err)
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// done is the end of a goroutine counted in busy.
func (s *server) done() {
	s.mu.Lock()
	s.busy--
	s.cond.Broadcast()
	s.mu.Unlock()
	s.wg.Done()
}

// add starts serving a new client.
func (s *server) add(nc net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.phase == stopping {
		nc.Close()
		return
	}
	if s.phase == paused {
		// Accepted just before the pause: pause it too.
		nc.SetDeadline(past)
	}
	c := &Conn{name: "conn-" + strconv.FormatUint(s.next, 10), nc: nc, s: s}
	s.next++
	s.conns[c.name] = c
	log.Printf("client %s connected (%s)", nc.RemoteAddr(), c.name)
	s.busy++
	s.wg.Add(1)
	go s.serve(c)
}

// serve runs one connection: first what an old instance left unfinished
// on it, then the service's handler.
func (s *server) serve(c *Conn) {
	err := c.flush()
	if err == nil && !c.closing {
		err = s.svc.Handle(c)
	}
	s.mu.Lock()
	ph := s.phase
	delete(s.conns, c.name)
	s.mu.Unlock()
	if ph != letGo {
		c.release()
		if err != nil && !errors.Is(err, errLetGo) && !errors.Is(err, net.ErrClosed) && !errors.Is(err, io.EOF) {
			log.Printf("client %s: %v", c.nc.RemoteAddr(), err)
		}
		log.Printf("client %s disconnected (%s)", c.nc.RemoteAddr(), c.name)
	}
	s.done()
}

// park is where a goroutine waits while a handoff is being prepared, after
// its Accept, Read or Write returned at the deadline in the past. nil: carry
// on (resumed, or the deadline was from a pause already over); errLetGo:
// return, the connection is no longer this goroutine's.
func (s *server) park() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.phase == paused {
		s.busy--
		s.cond.Broadcast()
		for s.phase == paused {
			s.cond.Wait()
		}
		s.busy++
	}
	if s.phase != running {
		return errLetGo
	}
	return nil
}

// prepare is handoff.Serve's: pause everything, then describe it. If it
// fails, nothing was handed over and the service serves on.
func (s *server) prepare(r *handoff.Request) (*handoff.Bundle, error) {
	b, err := s.pause(r)
	if err != nil {
		log.Printf("handoff declined, serving on: %v", err)
	}
	return b, err
}

func (s *server) pause(r *handoff.Request) (*handoff.Bundle, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.phase != running {
		return nil, errors.New("stopping")
	}
	s.phase = paused
	s.ln.SetDeadline(past)
	for _, c := range s.conns {
		c.nc.SetDeadline(past)
	}
	wake := time.AfterFunc(time.Until(r.Deadline), func() {
		s.mu.Lock()
		s.cond.Broadcast()
		s.mu.Unlock()
	})
	defer wake.Stop()
	for s.busy > 0 {
		if !time.Now().Before(r.Deadline) {
			s.resume()
			return nil, fmt.Errorf("%d connections (or the acceptor) still busy at the deadline", s.busy)
		}
		s.cond.Wait()
	}

	st := state{Format: stateFormat, Service: s.svc.Name, Generation: s.gen, NextConn: s.next}
	pending, unsent := 0, 0
	b := &handoff.Bundle{Listeners: []handoff.Listener{{Name: listenerName, Listener: s.ln}}}
	for _, name := range sortedKeys(s.conns) {
		c := s.conns[name]
		cs := connState{Name: name, Pending: c.in, Unsent: c.out, Close: c.closing}
		b.Conns = append(b.Conns, handoff.Conn{Name: name, Conn: c.nc})
		if c.file != nil {
			off, err := c.file.Seek(0, io.SeekCurrent)
			if err != nil {
				s.resume()
				return nil, fmt.Errorf("%s: %s: %w", name, c.file.Name(), err)
			}
			cs.File, cs.FileEnd = name+fileSuffix, off+c.left
			b.Files = append(b.Files, handoff.File{Name: cs.File, File: c.file})
		}
		st.Conns = append(st.Conns, cs)
		pending += len(c.in)
		unsent += len(c.out)
	}
	blob, err := json.Marshal(st)
	if err != nil {
		s.resume()
		return nil, err
	}
	b.State = blob
	b.Resume = func(err error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.phase == paused {
			s.resume()
		}
		log.Printf("handoff failed, serving on: %v", err)
	}
	log.Printf("handing over to the new instance: %d connections (%d bytes read and not answered, %d bytes of answers not sent), %d files, %d bytes of state",
		len(b.Conns), pending, unsent, len(b.Files), len(blob))
	return b, nil
}

// resume ends a pause; s.mu is held.
func (s *server) resume() {
	s.phase = running
	s.ln.SetDeadline(time.Time{})
	for _, c := range s.conns {
		c.nc.SetDeadline(time.Time{})
	}
	s.cond.Broadcast()
}

// letGo ends every goroutine after a handoff, leaving the descriptors alone
// (handoff.Serve has closed this process's copies).
func (s *server) letGo() {
	s.mu.Lock()
	s.phase = letGo
	s.cond.Broadcast()
	s.mu.Unlock()
	s.wg.Wait()
	log.Printf("%s %s handed over to the new instance; exiting", s.svc.Name, s.version)
}

// stop closes the listener and every connection and waits for the
// goroutines to end.
func (s *server) stop() {
	s.mu.Lock()
	s.phase = stopping
	s.ln.Close()
	for _, c := range s.conns {
		c.nc.Close()
	}
	s.cond.Broadcast()
	s.mu.Unlock()
	s.wg.Wait()
}
