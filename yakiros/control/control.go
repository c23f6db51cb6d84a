// Package control is the wire protocol between graphctl and graph-resolver:
// a Unix stream socket, one JSON request and one JSON response per
// connection. The server never acts on a request itself; it hands each one to
// the resolver's event loop as a Call and writes back the loop's answer.
package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// DefaultSocket is where graph-resolver listens unless told otherwise.
const DefaultSocket = "/run/graph-resolver.sock"

// SocketPath is the socket both sides use by default: $GRAPHCTL_SOCKET if
// set, else DefaultSocket.
func SocketPath() string {
	if p := os.Getenv("GRAPHCTL_SOCKET"); p != "" {
		return p
	}
	return DefaultSocket
}

// Timeout bounds every connection, on both sides, so a silent peer can
// never hold PID 1 or graphctl.
const Timeout = 5 * time.Second

// maxRequest bounds what the server reads from a client.
const maxRequest = 64 << 10

// Request is what graphctl sends. WaitMS lets a command that takes long
// by nature (upgrade waits for a handoff) ask for more than Timeout to
// answer in; the server grants at most MaxWait.
type Request struct {
	Command string   `json:"command"`
	Args    []string `json:"args"`
	WaitMS  int64    `json:"wait_ms,omitempty"`
}

// MaxWait bounds what a request's WaitMS may ask for.
const MaxWait = 2 * time.Minute

// wait is how long the server waits for the loop's answer to req.
func (req Request) wait() time.Duration {
	w := time.Duration(req.WaitMS) * time.Millisecond
	return min(max(w, Timeout), MaxWait)
}

// Response is what the server answers. Text is for humans; Data is the same
// answer as command-specific JSON; Error says why when OK is false. A
// failing response usually has no Text and null Data; one from FailWith
// has both.
type Response struct {
	OK    bool            `json:"ok"`
	Text  string          `json:"text"`
	Data  json.RawMessage `json:"data"`
	Error string          `json:"error"`
}

// OK builds a successful response.
func OK(text string, data any) Response {
	raw, err := json.Marshal(data)
	if err != nil {
		return Fail(fmt.Sprintf("encode reply: %v", err))
	}
	return Response{OK: true, Text: text, Data: raw}
}

// Fail builds an error response.
func Fail(msg string) Response {
	return Response{Error: msg, Data: json.RawMessage("null")}
}

// FailWith builds an error response that still carries a full answer: a
// check that found problems (validate) fails, and says what it found in
// text and data like a successful reply.
func FailWith(msg, text string, data any) Response {
	raw, err := json.Marshal(data)
	if err != nil {
		return Fail(fmt.Sprintf("%s (encode reply: %v)", msg, err))
	}
	return Response{Error: msg, Text: text, Data: raw}
}

// DecodeRequest reads one request: a JSON object with a non-empty
// "command" and optional "args", nothing else, at most maxRequest bytes.
// It reads no further than the end of that object, so a client need not
// close its side before reading the reply.
func DecodeRequest(r io.Reader) (Request, error) {
	var req Request
	dec := json.NewDecoder(io.LimitReader(r, maxRequest))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			err = fmt.Errorf("incomplete request (at most %d bytes of JSON): %w", maxRequest, err)
		}
		return Request{}, fmt.Errorf("bad request: %w", err)
	}
	if req.Command == "" {
		return Request{}, errors.New(`bad request: no "command"`)
	}
	if req.WaitMS < 0 {
		return Request{}, errors.New(`bad request: negative "wait_ms"`)
	}
	return req, nil
}

// Call is one request waiting for the event loop's answer.
type Call struct {
	Request Request
	PeerPid int // the requesting process, from the socket's peer credentials
	reply   chan Response
}

// Reply answers the call. It never blocks, so the loop is never held up by
// a client, even one that has gone away. Only the first reply counts.
func (c *Call) Reply(r Response) {
	select {
	case c.reply <- r:
	default:
	}
}

// Server accepts connections on the control socket.
type Server struct {
	path  string
	ln    *net.UnixListener
	logf  func(format string, args ...any)
	calls chan<- *Call
	done  chan struct{}
	wg    sync.WaitGroup
}

// Listen creates the socket at path with mode 0600 and starts serving:
// every request becomes a Call on calls. A stale socket file is replaced,
// but not one a live server still answers on. logf receives the problems of
// individual connections.
func Listen(path string, calls chan<- *Call, logf func(format string, args ...any)) (*Server, error) {
	if conn, err := net.DialTimeout("unix", path, time.Second); err == nil {
		conn.Close()
		return nil, fmt.Errorf("listen %s: another server is answering on it", path)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != os.ModeSocket {
			return nil, fmt.Errorf("listen %s: exists and is not a socket", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("listen %s: remove stale socket: %w", path, err)
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("listen %s: %w", path, err)
	}
	// Bind under a temporary name and rename once the mode is 0600, so
	// the socket is never reachable with looser permissions.
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".new")
	os.Remove(tmp)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", path, err)
	}
	ln.SetUnlinkOnClose(false)
	if err := os.Chmod(tmp, 0o600); err != nil {
		ln.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("listen %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		ln.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("listen %s: %w", path, err)
	}
	s := &Server{path: path, ln: ln, logf: logf, calls: calls, done: make(chan struct{})}
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

// Close stops accepting, waits for the connections in flight (each bounded
// by Timeout) and removes the socket.
func (s *Server) Close() error {
	close(s.done)
	err := s.ln.Close()
	s.wg.Wait()
	if rerr := os.Remove(s.path); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
		err = errors.Join(err, rerr)
	}
	return err
}

func (s *Server) accept() {
	defer s.wg.Done()
	for {
		conn, err := s.ln.AcceptUnix()
		if err != nil {
			select {
			case <-s.done:
			default:
				s.logf("control socket %s: accept: %v", s.path, err)
			}
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer conn.Close()
			if err := s.serve(conn); err != nil {
				s.logf("control socket %s: %v", s.path, err)
			}
		}()
	}
}

func (s *Server) serve(conn *net.UnixConn) error {
	deadline := time.Now().Add(Timeout)
	conn.SetDeadline(deadline)
	resp := s.answer(conn, deadline)
	// A client whose request timed out still gets told why.
	conn.SetWriteDeadline(later(deadline, time.Now().Add(time.Second)))
	if err := json.NewEncoder(conn).Encode(resp); err != nil {
		return fmt.Errorf("write reply: %w", err)
	}
	return nil
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func (s *Server) answer(conn *net.UnixConn, deadline time.Time) Response {
	// The request is read even from a client about to be refused, so that
	// its write never fails before it can read why.
	req, decodeErr := DecodeRequest(conn)
	cred, err := peerCred(conn)
	if err != nil {
		return Fail(err.Error())
	}
	if cred.Uid != 0 && cred.Uid != uint32(os.Getuid()) {
		return Fail(fmt.Sprintf("permission denied: uid %d may not use the control socket", cred.Uid))
	}
	if decodeErr != nil {
		return Fail(decodeErr.Error())
	}
	call := &Call{Request: req, PeerPid: int(cred.Pid), reply: make(chan Response, 1)}
	if w := req.wait(); w > Timeout {
		deadline = deadline.Add(w - Timeout)
		conn.SetDeadline(deadline)
	}
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	select {
	case s.calls <- call:
	case <-timer.C:
		return Fail("graph-resolver is busy; try again")
	case <-s.done:
		return Fail("graph-resolver is shutting down")
	}
	select {
	case r := <-call.reply:
		return r
	case <-timer.C:
		return Fail("graph-resolver did not answer in time")
	case <-s.done:
		return Fail("graph-resolver is shutting down")
	}
}

// peerCred identifies the process on the other end of conn.
func peerCred(conn *net.UnixConn) (*unix.Ucred, error) {
	raw, err := conn.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("peer credentials: %w", err)
	}
	var cred *unix.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return nil, fmt.Errorf("peer credentials: %w", err)
	}
	if credErr != nil {
		return nil, fmt.Errorf("peer credentials: %w", credErr)
	}
	return cred, nil
}

// Do sends one request to the server at path and returns its response. A
// response with OK false is not an error here; failing to get one is.
func Do(ctx context.Context, path string, req Request) (Response, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*Timeout+req.wait()-Timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return Response{}, fmt.Errorf("connect to graph-resolver: %w", err)
	}
	defer conn.Close()
	deadline, _ := ctx.Deadline()
	conn.SetDeadline(deadline)
	if req.Args == nil {
		req.Args = []string{}
	}
	if err := json.NewEncoder(conn).Encode(req); err != nil {
		return Response{}, fmt.Errorf("send request to %s: %w", path, err)
	}
	data, err := io.ReadAll(conn)
	if err != nil {
		return Response{}, fmt.Errorf("read reply from %s: %w", path, err)
	}
	var resp Response
	if err := json.Unmarshal(data, &resp); err != nil {
		return Response{}, fmt.Errorf("read reply from %s: %w", path, err)
	}
	return resp, nil
}
