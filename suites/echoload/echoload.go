// Package echoload is the load of the hot-swap suite: clients of the echo
// test service that talk without pause, each checking that every reply is
// the line it sent, in order, and noting which version answered.
//
// The clients stand for clients on other machines, so they run in a
// process of their own (`yakimg-runner echo-load`) in a cgroup that keeps
// them from taking the guest's CPU from the system under test: weight 1
// (they yield to any other work) and at most CPUMax. Without the cap, under
// single-threaded TCG, the vCPU that ran only clients took its full turn of
// the one host thread however low their priority, and the upgrade being
// measured waited for it.
//
// The process reports on stdout, one line per event:
//
//	seen <client> <version>    the client was first answered by <version>
//	failed <client> <error>    the client stopped: a reset, a lost,
//	                           repeated or reordered line, a timeout
//	replies <client> <n>       after stdin ends: the client stopped cleanly
//	                           after n replies
//
// and exits 0 once every client has stopped.
package echoload

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"
)

// replyTimeout is how long a client waits for the answer to one line: an
// upgrade pauses the service for well under a second.
const replyTimeout = 15 * time.Second

// Main runs `yakimg-runner echo-load --addr A --clients N` until stdin
// ends. Exit status 0 when every client stopped (cleanly or not: failures
// are events), 2 on a usage error.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("echo-load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "", "TCP address of the echo service")
	clients := fs.Int("clients", 64, "number of concurrent clients")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *addr == "" || *clients < 1 || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: yakimg-runner echo-load --addr HOST:PORT [--clients N]  (stops when stdin ends)")
		return 2
	}
	out := &events{w: bufio.NewWriter(stdout)}
	stop := make(chan struct{})
	go func() {
		io.Copy(io.Discard, stdin)
		close(stop)
	}()
	var wg sync.WaitGroup
	for id := range *clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			replies, err := talk(ctx, *addr, id, stop, out)
			if err != nil {
				out.printf("failed %d %s", id, oneLine(err.Error()))
				return
			}
			out.printf("replies %d %d", id, replies)
		}()
	}
	wg.Wait()
	return 0
}

// events writes event lines, whole, from many goroutines.
type events struct {
	mu sync.Mutex
	w  *bufio.Writer
}

func (e *events) printf(format string, args ...any) {
	e.mu.Lock()
	defer e.mu.Unlock()
	fmt.Fprintf(e.w, format+"\n", args...)
	e.w.Flush()
}

func oneLine(s string) string { return strings.ReplaceAll(s, "\n", " ") }

// talk is one client: numbered lines without pause until stop, each reply
// "<version> <line>" checked; a change of version is an event.
func talk(ctx context.Context, addr string, id int, stop <-chan struct{}, out *events) (replies int, err error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	r := bufio.NewReader(conn)
	version := ""
	for n := 0; ; n++ {
		select {
		case <-stop:
			return replies, nil
		case <-ctx.Done():
			return replies, ctx.Err()
		default:
		}
		line := fmt.Sprintf("echo-load-%d-%d", id, n)
		conn.SetDeadline(time.Now().Add(replyTimeout))
		if _, err := conn.Write([]byte(line + "\n")); err != nil {
			return replies, fmt.Errorf("send line %d: %w", n, err)
		}
		reply, err := r.ReadString('\n')
		if err != nil {
			return replies, fmt.Errorf("reply to line %d: %w (got %q)", n, err, reply)
		}
		v, echoed, ok := strings.Cut(strings.TrimSuffix(reply, "\n"), " ")
		if !ok || echoed != line {
			return replies, fmt.Errorf("sent %q, got %q: a line was lost, repeated or reordered", line, reply)
		}
		replies++
		if v != version {
			version = v
			out.printf("seen %d %s", id, v)
		}
	}
}

// Client is what the runner knows of one client.
type Client struct {
	Versions []string // in the order first seen
	Replies  int      // once stopped cleanly
	Err      error    // why it stopped, if not cleanly
	stopped  bool
}

// parse applies one event line to clients.
func parse(line string, clients []Client) error {
	verb, rest, _ := strings.Cut(line, " ")
	idText, arg, _ := strings.Cut(rest, " ")
	var id int
	if _, err := fmt.Sscan(idText, &id); err != nil || id < 0 || id >= len(clients) {
		return fmt.Errorf("event %q: no client %q", line, idText)
	}
	c := &clients[id]
	switch verb {
	case "seen":
		c.Versions = append(c.Versions, arg)
	case "failed":
		c.Err, c.stopped = errors.New(arg), true
	case "replies":
		if _, err := fmt.Sscan(arg, &c.Replies); err != nil {
			return fmt.Errorf("event %q: %v", line, err)
		}
		c.stopped = true
	default:
		return fmt.Errorf("event %q: unknown", line)
	}
	return nil
}
