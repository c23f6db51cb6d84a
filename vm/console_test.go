package vm

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"
)

func TestConsoleSink(t *testing.T) {
	var log bytes.Buffer
	var panics []string
	s := &consoleSink{log: &log, onPanic: func(l string) { panics = append(panics, l) }}
	var in bytes.Buffer
	for i := range 40 {
		fmt.Fprintf(&in, "line %d\r\n", i)
	}
	in.WriteString("[    3.2] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100\r\n")
	in.WriteString("[    3.3] Call Trace:\r\n[    3.4] Kernel panic - not syncing: again\r\nno newline at the end")
	// Chunks that split lines and line ends, the way a socket delivers them.
	for _, chunk := range chunks(in.Bytes(), 7) {
		if n, err := s.Write(chunk); n != len(chunk) || err != nil {
			t.Fatalf("Write(%d bytes) = %d, %v", len(chunk), n, err)
		}
	}
	s.flush()

	if !bytes.Equal(log.Bytes(), in.Bytes()) {
		t.Errorf("log differs from the console bytes")
	}
	want := "Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100"
	if s.panic != want || !slices.Equal(panics, []string{want}) {
		t.Errorf("panic = %q, onPanic calls %q; want one call with %q", s.panic, panics, want)
	}
	if len(s.tail) != tailLines || s.tail[0] != "line 11" || !strings.HasSuffix(s.tail[tailLines-1], want) {
		t.Errorf("tail = %q; want the %d lines ending at the panic", s.tail, tailLines)
	}
}

func TestConsoleSinkKeepsLastLineAndSplitsLongOnes(t *testing.T) {
	s := &consoleSink{}
	s.Write([]byte(strings.Repeat("x", maxLineSize+10)))
	s.Write([]byte("\nlast words"))
	s.flush()
	got := make([]int, len(s.tail))
	for i, l := range s.tail {
		got[i] = len(l)
	}
	if !slices.Equal(got, []int{maxLineSize, 10, len("last words")}) || s.tail[2] != "last words" {
		t.Errorf("tail line lengths = %v (%q); want %d, 10, and the unterminated last line", got, s.tail[len(s.tail)-1], maxLineSize)
	}
}

func chunks(b []byte, n int) [][]byte {
	var out [][]byte
	for len(b) > n {
		out = append(out, b[:n])
		b = b[n:]
	}
	return append(out, b)
}
