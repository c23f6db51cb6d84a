// Command test-monitor is a YakirOS test service that depends on the three
// other test services: every interval it asks the echo server, the web
// server and the database whether they answer, and logs one line with the
// outcome of each, so its log shows what it saw of its dependencies. It
// stops cleanly on SIGTERM.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	echo := flag.String("echo", "127.0.0.1:7070", "test-echo-server address")
	web := flag.String("web", "127.0.0.1:8080", "test-web-server address")
	db := flag.String("database", "127.0.0.1:7071", "test-database address")
	interval := flag.Duration("interval", 5*time.Second, "time between polls")
	flag.Parse()
	log.SetOutput(os.Stdout)
	log.SetFlags(log.LstdFlags | log.Lmicroseconds)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	log.Printf("test-monitor watching echo %s, web %s, database %s every %v (pid %d)", *echo, *web, *db, *interval, os.Getpid())
	checks := []check{
		{"echo", func(ctx context.Context) (string, error) { return askLine(ctx, *echo, "monitor", "monitor") }},
		{"web", func(ctx context.Context) (string, error) { return health(ctx, "http://"+*web+"/health") }},
		{"database", func(ctx context.Context) (string, error) { return askLine(ctx, *db, "PING", "PONG") }},
	}
	for round := 1; ; round++ {
		log.Print(poll(ctx, round, checks, *interval))
		select {
		case <-ctx.Done():
			log.Print("test-monitor stopped")
			return
		case <-time.After(*interval):
		}
	}
}

// check asks one service; it returns what the service said.
type check struct {
	name string
	ask  func(context.Context) (string, error)
}

// poll runs every check, each bounded by timeout, and describes the round.
func poll(ctx context.Context, round int, checks []check, timeout time.Duration) string {
	parts := make([]string, len(checks))
	for i, c := range checks {
		cctx, cancel := context.WithTimeout(ctx, timeout)
		said, err := c.ask(cctx)
		cancel()
		if err != nil {
			parts[i] = fmt.Sprintf("%s DOWN (%v)", c.name, err)
		} else {
			parts[i] = fmt.Sprintf("%s UP (%s)", c.name, said)
		}
	}
	return fmt.Sprintf("round %d: %s", round, strings.Join(parts, ", "))
}

// askLine sends line to addr and returns the reply line, which must contain
// want.
func askLine(ctx context.Context, addr, line, want string) (string, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	if _, err := fmt.Fprintf(conn, "%s\n", line); err != nil {
		return "", err
	}
	reply, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("read reply: %w", err)
	}
	reply = strings.TrimRight(reply, "\r\n")
	if !strings.Contains(reply, want) {
		return "", fmt.Errorf("unexpected reply %q", reply)
	}
	return reply, nil
}

// health GETs url and wants 200.
func health(ctx context.Context, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	said := strings.TrimSpace(string(body))
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s", resp.Status, said)
	}
	return said, nil
}
