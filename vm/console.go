package vm

import (
	"io"
	"strings"
)

// PanicMarker is what a Linux kernel prints when it panics.
const PanicMarker = "Kernel panic - not syncing"

const (
	tailLines   = 30
	maxLineSize = 4 << 10 // longer console lines are split; they are only kept for the tail
)

// consoleSink receives the guest console as it arrives: it copies the bytes
// to the console log, keeps the last lines for the summary and reports the
// first kernel panic line. After a panic the tail stops moving: what led to
// the panic explains it, the stack dump that follows is in the log.
type consoleSink struct {
	log     io.Writer // nil when no log was asked for
	logErr  error     // first log write error; the console keeps being read after it
	partial []byte
	tail    []string
	panic   string            // first line with PanicMarker
	onPanic func(line string) // called once, with that line
}

// Write never fails, so that a full disk under the log cannot stall the
// guest's console.
func (s *consoleSink) Write(p []byte) (int, error) {
	if s.log != nil && s.logErr == nil {
		_, s.logErr = s.log.Write(p)
	}
	for _, c := range p {
		if c == '\n' {
			s.line()
			continue
		}
		s.partial = append(s.partial, c)
		if len(s.partial) == maxLineSize {
			s.line()
		}
	}
	return len(p), nil
}

// flush ends a last line that had no terminator.
func (s *consoleSink) flush() {
	if len(s.partial) > 0 {
		s.line()
	}
}

func (s *consoleSink) line() {
	l := strings.TrimRight(string(s.partial), "\r")
	s.partial = s.partial[:0]
	if s.panic != "" {
		return
	}
	if len(s.tail) == tailLines {
		s.tail = append(s.tail[:0], s.tail[1:]...)
	}
	s.tail = append(s.tail, l)
	if s.panic == "" && strings.Contains(l, PanicMarker) {
		s.panic = strings.TrimSpace(l[strings.Index(l, PanicMarker):])
		if s.onPanic != nil {
			s.onPanic(s.panic)
		}
	}
}
