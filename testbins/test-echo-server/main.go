// Command test-echo-server is a YakirOS test service: a TCP server that
// answers every line a client sends with "<version> <line>", so a client can
// tell which build of the service answered (the hot-swap suite relies on it).
// It serves many clients at once and logs to stdout. Started with
// $NOTIFY_SOCKET set (YakirOS readiness "notify"), it sends READY=1 there
// once it listens.
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
	"syscall"

	"yakimg/testbins/internal/tcpserve"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:7070", "TCP address to listen on")
	version := flag.String("version", "v1", "version tag put before every reply")
	flag.Parse()
	log.SetOutput(os.Stdout)
	log.SetFlags(log.LstdFlags | log.Lmicroseconds)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := serve(ctx, *listen, *version, os.Getenv("NOTIFY_SOCKET")); err != nil {
		log.Fatal(err)
	}
}

// serve accepts clients until ctx ends, then closes every connection. Once
// it listens it tells the notify socket, if there is one, that it is ready.
func serve(ctx context.Context, addr, version, notifySocket string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", addr, err)
	}
	log.Printf("test-echo-server %s listening on %s (pid %d)", version, ln.Addr(), os.Getpid())
	if notifySocket != "" {
		if err := notifyReady(notifySocket, "listening on "+ln.Addr().String()); err != nil {
			ln.Close()
			return err
		}
		log.Printf("told %s it is ready", notifySocket)
	}

	if err := tcpserve.Serve(ctx, ln, func(conn net.Conn) { echo(conn, version) }); err != nil {
		return err
	}
	log.Printf("test-echo-server %s stopped", version)
	return nil
}

// notifyReady sends one datagram with READY=1 and a STATUS= line to the
// unix datagram socket at path (the sd_notify protocol YakirOS reads). It is
// sent from this process, which stays alive, so graph-resolver can attribute
// it by the sender's pid.
func notifyReady(path, status string) error {
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("notify %s: %w", path, err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("READY=1\nSTATUS=" + status)); err != nil {
		return fmt.Errorf("notify %s: %w", path, err)
	}
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
