// Command test-health-service is a YakirOS test service whose health is
// switched on demand, for the health-checks suite. It serves a control port
// and watches a control file; it can be checked by each of YakirOS's health
// methods: a command (`test-health-service check ADDR`), a health file it
// writes, and reports on the notify socket.
//
// Its state is healthy (at start), unhealthy (with a reason) or hung. The
// control port takes one command per line and answers each with one line:
//
//	healthy             "ok healthy"
//	unhealthy [REASON]  "ok unhealthy"
//	hang                "ok hang"
//	status              "healthy", "unhealthy: REASON" or "hang"
//	check               "ok" or "fail: REASON"; while hung, no answer until
//	                    the state changes
//
// The control file (--control-file) is read every 100 ms; whenever its
// first line changes, it is applied like a command of the port (healthy,
// unhealthy [REASON] or hang). The health file (--health-file) is rewritten
// (atomically) at start and at every change: "ok" or "fail: REASON"; a hung
// service leaves it as it was. With $NOTIFY_SOCKET set it sends READY=1 once
// it listens, then HEALTH=ok or HEALTH=fail:REASON every --report-every
// (default: half of $WATCHDOG_USEC, else 1s), and nothing while hung.
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
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"yakimg/testbins/internal/tcpserve"
)

func main() {
	if len(os.Args) == 3 && os.Args[1] == "check" {
		os.Exit(check(os.Args[2], os.Stdout))
	}
	listen := flag.String("listen", "127.0.0.1:7072", "TCP address of the control port")
	controlFile := flag.String("control-file", "", "file whose first line switches the health (healthy, unhealthy [REASON], hang)")
	healthFile := flag.String("health-file", "", "file to keep the health in: ok or fail: REASON")
	every := flag.Duration("report-every", 0, "how often to report HEALTH= to $NOTIFY_SOCKET (default: half of $WATCHDOG_USEC, else 1s)")
	flag.Parse()
	log.SetOutput(os.Stdout)
	log.SetFlags(log.LstdFlags | log.Lmicroseconds)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	s := &service{healthFile: *healthFile, changed: make(chan struct{})}
	if err := s.run(ctx, *listen, *controlFile, os.Getenv("NOTIFY_SOCKET"), reportEvery(*every)); err != nil {
		log.Fatal(err)
	}
}

// reportEvery is the notify report period: the flag, else half the
// interval YakirOS announced in WATCHDOG_USEC, else 1s.
func reportEvery(flagged time.Duration) time.Duration {
	if flagged > 0 {
		return flagged
	}
	if us, err := strconv.ParseInt(os.Getenv("WATCHDOG_USEC"), 10, 64); err == nil && us > 0 {
		return time.Duration(us) * time.Microsecond / 2
	}
	return time.Second
}

// state is the service's health.
type state struct {
	name   string // healthy, unhealthy or hang
	reason string // why it is unhealthy
}

func (st state) String() string {
	if st.name == "unhealthy" {
		return "unhealthy: " + st.reason
	}
	return st.name
}

// parseState reads a command that sets the state.
func parseState(line string) (state, bool) {
	word, rest, _ := strings.Cut(strings.TrimSpace(line), " ")
	switch word {
	case "healthy", "hang":
		return state{name: word}, true
	case "unhealthy":
		reason := strings.TrimSpace(rest)
		if reason == "" {
			reason = "switched to unhealthy"
		}
		return state{name: word, reason: reason}, true
	}
	return state{}, false
}

type service struct {
	healthFile string

	mu      sync.Mutex
	st      state
	changed chan struct{} // closed and replaced at every change
}

func (s *service) get() (state, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st, s.changed
}

// set switches the state and writes the health file (unless hung).
func (s *service) set(st state, by string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st = st
	close(s.changed)
	s.changed = make(chan struct{})
	log.Printf("health is now %s (by %s)", st, by)
	if s.healthFile == "" || st.name == "hang" {
		return nil
	}
	text := "ok\n"
	if st.name == "unhealthy" {
		text = "fail: " + st.reason + "\n"
	}
	return writeAtomic(s.healthFile, text)
}

// writeAtomic replaces path with text, so a reader never sees half a file.
func writeAtomic(path, text string) error {
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, []byte(text), 0o644); err != nil {
		return fmt.Errorf("health file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("health file: %w", err)
	}
	return nil
}

func (s *service) run(ctx context.Context, addr, controlFile, notifySocket string, every time.Duration) error {
	if err := s.set(state{name: "healthy"}, "start"); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", addr, err)
	}
	log.Printf("test-health-service listening on %s (pid %d)", ln.Addr(), os.Getpid())
	if controlFile != "" {
		go s.watchFile(ctx, controlFile)
	}
	if notifySocket != "" {
		conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: notifySocket, Net: "unixgram"})
		if err != nil {
			ln.Close()
			return fmt.Errorf("notify %s: %w", notifySocket, err)
		}
		defer conn.Close()
		if _, err := conn.Write([]byte("READY=1\nSTATUS=listening on " + ln.Addr().String())); err != nil {
			ln.Close()
			return fmt.Errorf("notify %s: %w", notifySocket, err)
		}
		log.Printf("told %s it is ready; reporting health every %v", notifySocket, every)
		go s.report(ctx, conn, every)
	}
	if err := tcpserve.Serve(ctx, ln, s.serve); err != nil {
		return err
	}
	log.Printf("test-health-service stopped")
	return nil
}

// report sends the health to the notify socket every period, except
// while hung.
func (s *service) report(ctx context.Context, conn *net.UnixConn, every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		st, _ := s.get()
		msg := ""
		switch st.name {
		case "healthy":
			msg = "HEALTH=ok"
		case "unhealthy":
			msg = "HEALTH=fail:" + st.reason
		}
		if msg != "" {
			if _, err := conn.Write([]byte(msg)); err != nil {
				log.Printf("report health: %v", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// watchFile applies the control file's first line whenever it changes.
func (s *service) watchFile(ctx context.Context, path string) {
	last := ""
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if data, err := os.ReadFile(path); err == nil {
			line, _, _ := strings.Cut(string(data), "\n")
			if line = strings.TrimSpace(line); line != "" && line != last {
				last = line
				if st, ok := parseState(line); ok {
					if err := s.set(st, path); err != nil {
						log.Printf("%v", err)
					}
				} else {
					log.Printf("%s: unknown state %q", path, line)
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// serve answers the commands of one control connection.
func (s *service) serve(conn net.Conn) {
	r := bufio.NewReader(conn)
	for {
		line, err := r.ReadString('\n')
		if line = strings.TrimSpace(line); line != "" {
			if werr := s.answer(conn, line); werr != nil {
				return
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				log.Printf("control %s: %v", conn.RemoteAddr(), err)
			}
			return
		}
	}
}

func (s *service) answer(conn net.Conn, line string) error {
	reply := func(text string) error {
		_, err := fmt.Fprintln(conn, text)
		return err
	}
	switch line {
	case "status":
		st, _ := s.get()
		return reply(st.String())
	case "check":
		for {
			st, changed := s.get()
			switch st.name {
			case "healthy":
				return reply("ok")
			case "unhealthy":
				return reply("fail: " + st.reason)
			}
			<-changed // hung: no answer until the state changes
		}
	}
	st, ok := parseState(line)
	if !ok {
		return reply(fmt.Sprintf("error: unknown command %q (healthy, unhealthy [REASON], hang, status, check)", line))
	}
	if err := s.set(st, "control port"); err != nil {
		return reply("error: " + err.Error())
	}
	return reply("ok " + st.name)
}

// check is `test-health-service check ADDR`: it asks the service at ADDR
// and exits 0 if it is healthy, 1 if it is not or cannot be asked. It has
// no timeout of its own: a hung service hangs it, for YakirOS to kill.
func check(addr string, stdout io.Writer) int {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		fmt.Fprintf(stdout, "check %s: %v\n", addr, err)
		return 1
	}
	defer conn.Close()
	if _, err := fmt.Fprintln(conn, "check"); err != nil {
		fmt.Fprintf(stdout, "check %s: %v\n", addr, err)
		return 1
	}
	answer, err := bufio.NewReader(conn).ReadString('\n')
	answer = strings.TrimSpace(answer)
	if err != nil && answer == "" {
		fmt.Fprintf(stdout, "check %s: %v\n", addr, err)
		return 1
	}
	if answer != "ok" {
		fmt.Fprintf(stdout, "check %s: %s\n", addr, answer)
		return 1
	}
	return 0
}
