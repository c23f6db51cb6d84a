// Command test-echo-server is a YakirOS test service: a TCP server that
// answers every line a client sends with "<version> <line>", so a client can
// tell which build of the service answered (the hot-swap suite relies on it).
// It serves many clients at once and logs to stdout.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:7070", "TCP address to listen on")
	version := flag.String("version", "v1", "version tag put before every reply")
	flag.Parse()
	log.SetOutput(os.Stdout)
	log.SetFlags(log.LstdFlags | log.Lmicroseconds)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := serve(ctx, *listen, *version); err != nil {
		log.Fatal(err)
	}
}

// serve accepts clients until ctx ends, then closes every connection.
func serve(ctx context.Context, addr, version string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", addr, err)
	}
	log.Printf("test-echo-server %s listening on %s (pid %d)", version, ln.Addr(), os.Getpid())

	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns = map[net.Conn]bool{}
	)
	go func() {
		<-ctx.Done()
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
			echo(conn, version)
			mu.Lock()
			delete(conns, conn)
			mu.Unlock()
		}()
	}
	wg.Wait()
	log.Printf("test-echo-server %s stopped", version)
	return nil
}

// echo answers each line of one client until it hangs up.
func echo(conn net.Conn, version string) {
	defer conn.Close()
	peer := conn.RemoteAddr()
	log.Printf("client %s connected", peer)
	r := bufio.NewReader(conn)
	for {
		line, err := r.ReadString('\n')
		if line != "" {
			line = strings.TrimRight(line, "\r\n")
			if _, werr := fmt.Fprintf(conn, "%s %s\n", version, line); werr != nil {
				log.Printf("client %s: %v", peer, werr)
				return
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				log.Printf("client %s: %v", peer, err)
			}
			break
		}
	}
	log.Printf("client %s disconnected", peer)
}
