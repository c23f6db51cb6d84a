package handoff

import (
	"context"
	"fmt"
	"net"
	"testing"
)

// BenchmarkHandoff hands a TCP listener, 64 established TCP connections
// and 64 KiB of state from one goroutine to another over a real channel:
// the whole HELLO … COMMIT exchange, the descriptors duplicated, sent by
// SCM_RIGHTS and adopted with net.FileListener / net.FileConn.
func BenchmarkHandoff(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	bundle := &Bundle{Listeners: []Listener{{Name: "tcp", Listener: ln}}, State: make([]byte, 64<<10)}
	for i := range 64 {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		s, err := ln.Accept()
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		bundle.Conns = append(bundle.Conns, Conn{Name: fmt.Sprintf("conn-%d", i), Conn: s})
	}
	prepare := func(*Request) (*Bundle, error) { return bundle, nil }
	results := make(chan result, 1)
	b.ReportAllocs()
	for b.Loop() {
		oldEnd, newEnd, err := seqpacketPair("bench")
		if err != nil {
			b.Fatal(err)
		}
		go func() {
			_, res := upgrade(context.Background(), request{ID: 1, TimeoutMS: 10000}, oldEnd, prepare)
			results <- res
		}()
		l, err := fileLink(newEnd)
		if err != nil {
			b.Fatal(err)
		}
		set, err := receive(l)
		if err != nil {
			b.Fatal(err)
		}
		nl, err := set.Listener("tcp")
		if err != nil {
			b.Fatal(err)
		}
		conns, err := set.Conns()
		if err != nil {
			b.Fatal(err)
		}
		if err := set.Ack(); err != nil {
			b.Fatal(err)
		}
		if res := <-results; res.Failed || res.FDs != 65 {
			b.Fatalf("result %+v; want 65 descriptors handed over", res)
		}
		// The duplicates only: the originals stay open for the next round.
		nl.Close()
		for _, c := range conns {
			c.Conn.Close()
		}
	}
}
