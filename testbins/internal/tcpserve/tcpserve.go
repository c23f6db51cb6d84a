// Package tcpserve is the accept loop the TCP test services share: one
// goroutine per client, and on shutdown the listener and every open
// connection are closed so the service exits promptly on SIGTERM.
package tcpserve

import (
	"context"
	"fmt"
	"net"
	"sync"
)

// Serve calls handle for every client of ln, each in its own goroutine,
// until ctx ends; then it closes ln and every open connection, waits for
// the handlers to return and returns nil. handle need not close its conn.
func Serve(ctx context.Context, ln net.Listener, handle func(net.Conn)) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns = map[net.Conn]bool{}
	)
	stopped := make(chan struct{})
	defer close(stopped)
	go func() {
		select {
		case <-ctx.Done():
		case <-stopped:
		}
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
	}()
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			return fmt.Errorf("accept: %w", err)
		}
		mu.Lock()
		conns[conn] = true
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer conn.Close()
			handle(conn)
			mu.Lock()
			delete(conns, conn)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return nil
}
