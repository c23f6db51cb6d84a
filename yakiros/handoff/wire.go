package handoff

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Version is the protocol version this package speaks. It is the first
// payload field of REQUEST, HELLO and OFFER; a side that receives another
// version refuses (VersionError).
const Version = 1

// Limits of the wire format (docs/HANDOFF.md, "Records").
const (
	headerSize = 8
	maxRecord  = 1 << 16 // bytes per record, header included
	maxChunk   = maxRecord - headerSize
	maxFDs     = 253 // SCM_MAX_FD: the kernel refuses more descriptors in one message
	maxName    = 255
	maxReason  = 1024
	entrySize  = 12 // fixed part of one FDS entry: kind, reserved, name length, offset
	fdsHead    = 4  // FDS payload before its entries: count, reserved
)

// ErrProtocol is wrapped by every error about a malformed, misplaced or
// unexpected record, including VersionError.
var ErrProtocol = errors.New("handoff protocol violation")

// VersionError is a REQUEST, HELLO or OFFER of another protocol version.
type VersionError struct{ Got uint16 }

func (e *VersionError) Error() string {
	return fmt.Sprintf("peer speaks handoff protocol version %d; this side speaks %d", e.Got, Version)
}

// Unwrap makes a version mismatch an ErrProtocol.
func (e *VersionError) Unwrap() error { return ErrProtocol }

func protoErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrProtocol, fmt.Sprintf(format, args...))
}

type recType uint8

const (
	typeRequest recType = 0x01 // supervisor → old, control socket, carries the channel end
	typeResult  recType = 0x02 // old → supervisor, control socket
	typeHello   recType = 0x10 // new → old
	typeOffer   recType = 0x11 // old → new
	typeFDs     recType = 0x12 // old → new, carries descriptors
	typeState   recType = 0x13 // old → new
	typeDone    recType = 0x14 // old → new
	typeAck     recType = 0x15 // new → old
	typeCommit  recType = 0x16 // old → new
	typeAbort   recType = 0x17 // either way on the channel
)

var typeNames = map[recType]string{
	typeRequest: "REQUEST", typeResult: "RESULT", typeHello: "HELLO", typeOffer: "OFFER",
	typeFDs: "FDS", typeState: "STATE", typeDone: "DONE", typeAck: "ACK",
	typeCommit: "COMMIT", typeAbort: "ABORT",
}

func (t recType) String() string {
	if s, ok := typeNames[t]; ok {
		return s
	}
	return fmt.Sprintf("record type 0x%02x", uint8(t))
}

// kind is the role of a handed-over descriptor.
type kind uint8

const (
	kindListener kind = 1
	kindConn     kind = 2
	kindFile     kind = 3
)

func (k kind) String() string {
	switch k {
	case kindListener:
		return "listener"
	case kindConn:
		return "connection"
	case kindFile:
		return "file"
	}
	return fmt.Sprintf("kind %d", uint8(k))
}

// The decoded records. decode returns one of these; encode takes one.
type (
	request struct {
		ID        uint32
		TimeoutMS uint32
	}
	result struct {
		ID     uint32
		Failed bool
		FDs    uint32
		State  uint64
		Reason string // only when Failed
	}
	hello struct{}
	offer struct {
		FDs   uint32
		State uint64
	}
	fdEntry struct {
		Kind   kind
		Name   string
		Offset int64 // -1: not seekable (every socket)
	}
	fdBatch    []fdEntry
	stateChunk []byte
	done       struct{}
	ack        struct {
		FDs   uint32
		State uint64
	}
	commit struct{}
	abort  struct{ Reason string }
)

// message is a decoded record.
type message interface{ recType() recType }

func (request) recType() recType    { return typeRequest }
func (result) recType() recType     { return typeResult }
func (hello) recType() recType      { return typeHello }
func (offer) recType() recType      { return typeOffer }
func (fdBatch) recType() recType    { return typeFDs }
func (stateChunk) recType() recType { return typeState }
func (done) recType() recType       { return typeDone }
func (ack) recType() recType        { return typeAck }
func (commit) recType() recType     { return typeCommit }
func (abort) recType() recType      { return typeAbort }

var le = binary.LittleEndian

// encode returns msg as one record. Reasons are cut to maxReason bytes of
// valid UTF-8; every other field must already be within limits.
func encode(msg message) []byte {
	var p []byte
	switch m := msg.(type) {
	case request:
		p = le.AppendUint16(p, Version)
		p = le.AppendUint16(p, 0)
		p = le.AppendUint32(p, m.ID)
		p = le.AppendUint32(p, m.TimeoutMS)
	case result:
		p = le.AppendUint32(p, m.ID)
		status := byte(0)
		if m.Failed {
			status = 1
		}
		p = append(p, status, 0, 0, 0)
		p = le.AppendUint32(p, m.FDs)
		p = le.AppendUint64(p, m.State)
		if m.Failed {
			p = append(p, cutReason(m.Reason)...)
		}
	case hello:
		p = le.AppendUint16(p, Version)
		p = le.AppendUint16(p, 0)
	case offer:
		p = le.AppendUint16(p, Version)
		p = le.AppendUint16(p, 0)
		p = le.AppendUint32(p, m.FDs)
		p = le.AppendUint64(p, m.State)
	case fdBatch:
		p = le.AppendUint16(p, uint16(len(m)))
		p = le.AppendUint16(p, 0)
		for _, e := range m {
			p = append(p, byte(e.Kind), 0)
			p = le.AppendUint16(p, uint16(len(e.Name)))
			p = le.AppendUint64(p, uint64(e.Offset))
			p = append(p, e.Name...)
		}
	case stateChunk:
		p = m
	case ack:
		p = le.AppendUint32(p, m.FDs)
		p = le.AppendUint64(p, m.State)
	case abort:
		p = []byte(cutReason(m.Reason))
	}
	rec := make([]byte, headerSize, headerSize+len(p))
	rec[0], rec[1], rec[2] = 'Y', 'H', byte(msg.recType())
	le.PutUint32(rec[4:], uint32(len(p)))
	return append(rec, p...)
}

// cutReason makes s valid UTF-8 of at most maxReason bytes, cut at a rune
// boundary.
func cutReason(s string) string {
	s = strings.ToValidUTF8(s, "?")
	for len(s) > maxReason {
		_, size := utf8.DecodeLastRuneInString(s)
		s = s[:len(s)-size]
	}
	return s
}

// decode parses one record. It is strict (reserved fields zero, exact
// lengths, known types) so that every record it accepts encodes back to the
// same bytes. A stateChunk aliases b.
func decode(b []byte) (message, error) {
	if len(b) < headerSize {
		return nil, protoErr("record of %d bytes is shorter than the %d-byte header", len(b), headerSize)
	}
	if len(b) > maxRecord {
		return nil, protoErr("record of %d bytes is longer than %d", len(b), maxRecord)
	}
	if b[0] != 'Y' || b[1] != 'H' {
		return nil, protoErr("record starts with %q, not the magic \"YH\"", b[:2])
	}
	typ, p := recType(b[2]), b[headerSize:]
	if b[3] != 0 {
		return nil, protoErr("%v: flags 0x%02x, want 0", typ, b[3])
	}
	if n := le.Uint32(b[4:]); uint64(n) != uint64(len(p)) {
		return nil, protoErr("%v: header says %d payload bytes, record has %d", typ, n, len(p))
	}
	size := func(want int) error {
		if len(p) != want {
			return protoErr("%v: payload of %d bytes, want %d", typ, len(p), want)
		}
		return nil
	}
	switch typ {
	case typeRequest:
		if err := version(p); err != nil {
			return nil, err
		}
		if err := size(12); err != nil {
			return nil, err
		}
		m := request{ID: le.Uint32(p[4:]), TimeoutMS: le.Uint32(p[8:])}
		switch {
		case le.Uint16(p[2:]) != 0:
			return nil, protoErr("REQUEST: reserved field not zero")
		case m.ID == 0:
			return nil, protoErr("REQUEST: id 0 (ids start at 1)")
		case m.TimeoutMS == 0:
			return nil, protoErr("REQUEST: timeout 0")
		}
		return m, nil
	case typeResult:
		if len(p) < 20 {
			return nil, protoErr("RESULT: payload of %d bytes, want at least 20", len(p))
		}
		if p[5] != 0 || p[6] != 0 || p[7] != 0 {
			return nil, protoErr("RESULT: reserved bytes not zero")
		}
		m := result{ID: le.Uint32(p), FDs: le.Uint32(p[8:]), State: le.Uint64(p[12:])}
		switch p[4] {
		case 0:
			if len(p) > 20 {
				return nil, protoErr("RESULT: success with a reason")
			}
		case 1:
			m.Failed = true
			reason, err := text("RESULT reason", p[20:], maxReason)
			if err != nil {
				return nil, err
			}
			m.Reason = reason
		default:
			return nil, protoErr("RESULT: status %d, want 0 or 1", p[4])
		}
		return m, nil
	case typeHello:
		if err := version(p); err != nil {
			return nil, err
		}
		if err := size(4); err != nil {
			return nil, err
		}
		if le.Uint16(p[2:]) != 0 {
			return nil, protoErr("HELLO: reserved field not zero")
		}
		return hello{}, nil
	case typeOffer:
		if err := version(p); err != nil {
			return nil, err
		}
		if err := size(16); err != nil {
			return nil, err
		}
		if le.Uint16(p[2:]) != 0 {
			return nil, protoErr("OFFER: reserved field not zero")
		}
		return offer{FDs: le.Uint32(p[4:]), State: le.Uint64(p[8:])}, nil
	case typeFDs:
		return decodeFDs(p)
	case typeState:
		if len(p) == 0 {
			return nil, protoErr("STATE: empty chunk")
		}
		return stateChunk(p), nil
	case typeDone:
		return done{}, size(0)
	case typeAck:
		if err := size(12); err != nil {
			return nil, err
		}
		return ack{FDs: le.Uint32(p), State: le.Uint64(p[4:])}, nil
	case typeCommit:
		return commit{}, size(0)
	case typeAbort:
		reason, err := text("ABORT reason", p, maxReason)
		if err != nil {
			return nil, err
		}
		return abort{Reason: reason}, nil
	}
	return nil, protoErr("unknown %v", typ)
}

// version checks the 16-bit version at the start of p.
func version(p []byte) error {
	if len(p) < 2 {
		return protoErr("payload too short for a protocol version")
	}
	if v := le.Uint16(p); v != Version {
		return &VersionError{Got: v}
	}
	return nil
}

func text(what string, p []byte, limit int) (string, error) {
	if len(p) > limit {
		return "", protoErr("%s of %d bytes, at most %d", what, len(p), limit)
	}
	if !utf8.Valid(p) {
		return "", protoErr("%s is not UTF-8", what)
	}
	return string(p), nil
}

func decodeFDs(p []byte) (fdBatch, error) {
	if len(p) < fdsHead {
		return nil, protoErr("FDS: payload of %d bytes, want at least %d", len(p), fdsHead)
	}
	n := int(le.Uint16(p))
	if n == 0 || n > maxFDs {
		return nil, protoErr("FDS: %d entries, want 1 to %d", n, maxFDs)
	}
	if le.Uint16(p[2:]) != 0 {
		return nil, protoErr("FDS: reserved field not zero")
	}
	p = p[fdsHead:]
	batch := make(fdBatch, 0, n)
	for i := range n {
		if len(p) < entrySize {
			return nil, protoErr("FDS: entry %d truncated", i)
		}
		e := fdEntry{Kind: kind(p[0]), Offset: int64(le.Uint64(p[4:]))}
		nameLen := int(le.Uint16(p[2:]))
		switch {
		case e.Kind < kindListener || e.Kind > kindFile:
			return nil, protoErr("FDS: entry %d has unknown kind %d", i, p[0])
		case p[1] != 0:
			return nil, protoErr("FDS: entry %d: reserved byte not zero", i)
		case nameLen == 0 || nameLen > maxName:
			return nil, protoErr("FDS: entry %d: name of %d bytes, want 1 to %d", i, nameLen, maxName)
		case len(p) < entrySize+nameLen:
			return nil, protoErr("FDS: entry %d: name truncated", i)
		case e.Offset < -1:
			return nil, protoErr("FDS: entry %d: offset %d", i, e.Offset)
		case e.Kind != kindFile && e.Offset != -1:
			return nil, protoErr("FDS: entry %d: a %v with offset %d, want -1", i, e.Kind, e.Offset)
		}
		name, err := text("FDS name", p[entrySize:entrySize+nameLen], maxName)
		if err != nil {
			return nil, err
		}
		e.Name = name
		batch = append(batch, e)
		p = p[entrySize+nameLen:]
	}
	if len(p) != 0 {
		return nil, protoErr("FDS: %d bytes after the last entry", len(p))
	}
	return batch, nil
}
