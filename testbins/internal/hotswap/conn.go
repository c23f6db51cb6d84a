package hotswap

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
)

// MaxBuffered is how much input a connection may hold without the handler
// consuming it: Fill fails beyond it, so a client that never ends its
// request cannot fill the memory (or the state blob).
const MaxBuffered = 2 << 20

// chunkSize is how much of a file SendFile reads and writes at a time; at
// most this much of a file travels in the state as unsent output.
const chunkSize = 32 << 10

// Conn is one client connection as a handler sees it. The handler reads
// with ReadLine, or with Buffered, Fill and Consume, and answers with Write,
// Finish and SendFile; it never uses the socket itself. Those calls are
// where a handoff pauses the connection, and what the Conn holds between
// them (input not consumed, output not sent, a file being sent) is what
// moves to the new instance.
//
// One rule makes that exact: consume a request before writing its answer.
// Consumed input is then answered by output the Conn holds, unconsumed
// input by whichever instance serves next; nothing is lost or answered
// twice. Between those calls a handler may compute and read files, but it
// must not block.
type Conn struct {
	name    string
	nc      net.Conn
	s       *server
	in      []byte   // read from the client, not consumed
	out     []byte   // to be written before anything else
	file    *os.File // being sent after out
	left    int64    // bytes of file still to send
	closing bool     // end the connection once out and file are sent
	chunk   []byte
}

// Version is the version the replies carry: the build, then "+" and the
// generation once the service has been handed over.
func (c *Conn) Version() string { return c.s.version }

// RemoteAddr is the client's address.
func (c *Conn) RemoteAddr() net.Addr { return c.nc.RemoteAddr() }

// Buffered is the input read and not consumed yet. It is valid until the
// next Fill or Consume.
func (c *Conn) Buffered() []byte { return c.in }

// Consume drops the first n bytes of Buffered: the handler has taken that
// request and will answer it.
func (c *Conn) Consume(n int) { c.in = c.in[n:] }

// Fill waits for more input and appends it to Buffered. It returns io.EOF
// once the client has closed its side, and an error the handler must return
// when the service lets the connection go (handed over or stopping).
func (c *Conn) Fill() error {
	if len(c.in) >= MaxBuffered {
		return fmt.Errorf("%d bytes without a complete request", len(c.in))
	}
	if cap(c.in)-len(c.in) < 4<<10 {
		c.in = append(make([]byte, 0, len(c.in)+16<<10), c.in...)
	}
	for {
		n, err := c.nc.Read(c.in[len(c.in):cap(c.in)])
		if n > 0 {
			c.in = c.in[:len(c.in)+n]
			return nil
		}
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			if err := c.s.park(); err != nil {
				return err
			}
		case err != nil:
			return err
		}
	}
}

// ReadLine consumes and returns the next line, without "\n" and the "\r"
// before it. A last line without "\n" is returned when the client closes
// its side; after it, io.EOF.
func (c *Conn) ReadLine() (string, error) {
	for {
		if i := bytes.IndexByte(c.in, '\n'); i >= 0 {
			line := string(c.in[:i])
			c.Consume(i + 1)
			return strings.TrimRight(line, "\r"), nil
		}
		err := c.Fill()
		if errors.Is(err, io.EOF) && len(c.in) > 0 {
			line := string(c.in)
			c.Consume(len(c.in))
			return strings.TrimRight(line, "\r"), nil
		}
		if err != nil {
			return "", err
		}
	}
}

// Write sends all of p. p must not change until Write returns.
func (c *Conn) Write(p []byte) error {
	c.out = p
	return c.flush()
}

// Finish sends p and ends the connection: the handler returns after it. If
// a handoff comes in between, the new instance sends the rest and closes.
func (c *Conn) Finish(p []byte) error {
	c.closing = true
	c.out = p
	return c.flush()
}

// SendFile sends head, then the next n bytes of f from its offset, and
// closes f. If a handoff comes in between, f moves with the connection and
// the new instance sends the rest from where this one stopped.
func (c *Conn) SendFile(head []byte, f *os.File, n int64) error {
	c.out, c.file, c.left = head, f, n
	return c.flush()
}

// flush sends out, then what is left of file.
func (c *Conn) flush() error {
	for {
		for len(c.out) > 0 {
			n, err := c.nc.Write(c.out)
			c.out = c.out[n:]
			switch {
			case errors.Is(err, os.ErrDeadlineExceeded):
				if err := c.s.park(); err != nil {
					return err
				}
			case err != nil:
				return err
			}
		}
		if c.file == nil {
			return nil
		}
		if c.left == 0 {
			f := c.file
			c.file = nil
			return f.Close()
		}
		if c.chunk == nil {
			c.chunk = make([]byte, chunkSize)
		}
		n, err := c.file.Read(c.chunk[:min(int64(len(c.chunk)), c.left)])
		c.left -= int64(n)
		c.out = c.chunk[:n]
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("the file being sent ended %d bytes early", c.left)
		}
		if err != nil {
			return err
		}
	}
}

// release closes what the connection holds.
func (c *Conn) release() {
	c.nc.Close()
	if c.file != nil {
		c.file.Close()
		c.file = nil
	}
}
