package tcpserve

import (
	"bufio"
	"context"
	"net"
	"testing"
	"time"
)

// TestServeClosesClientsOnCancel proves that cancelling ends Serve even
// while a client is connected and idle, and that the client sees EOF.
func TestServeClosesClientsOnCancel(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Serve(ctx, ln, func(c net.Conn) {
			line, _ := bufio.NewReader(c).ReadString('\n')
			c.Write([]byte("got " + line))
			bufio.NewReader(c).ReadString('\n') // idle until closed
		})
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("hi\n"))
	r := bufio.NewReader(c)
	if got, err := r.ReadString('\n'); err != nil || got != "got hi\n" {
		t.Fatalf("reply = %q, %v; want %q", got, err, "got hi\n")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve = %v; want nil after cancel", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after cancel with a client connected")
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := r.ReadString('\n'); err == nil {
		t.Fatal("client still connected after Serve returned")
	}
}
