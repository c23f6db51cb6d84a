// Command test-checkpoint-service is a YakirOS test service whose whole
// state lives only in its memory: a counter and a list of messages. Only a
// CRIU checkpoint and restore can carry that state past the end of the
// process, which is what the checkpointing suite proves.
//
// It serves HTTP (every response closes its connection, so a checkpoint
// never finds an established socket):
//
//	POST /increment     adds one to the counter, answers the new value
//	POST /message       appends the request body to the messages, answers their count
//	GET  /state         {"counter": N, "messages": [...], "pid": P}
//
// `test-checkpoint-service check ADDR` exits 0 when the service at ADDR
// answers /state: its health check.
//
// It writes one line when it listens and nothing after: its output pipe
// is replaced across a restore.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) == 3 && os.Args[1] == "check" {
		os.Exit(check(os.Args[2]))
	}
	listen := flag.String("listen", "127.0.0.1:7075", "TCP address to serve HTTP on")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := serve(ctx, *listen, func(addr string) { fmt.Printf("test-checkpoint-service: serving on %s\n", addr) }); err != nil {
		log.Fatalf("test-checkpoint-service: %v", err)
	}
}

// State is what the service keeps, as /state shows it.
type State struct {
	Counter  int      `json:"counter"`
	Messages []string `json:"messages"`
	Pid      int      `json:"pid"`
}

type service struct {
	mu    sync.Mutex
	state State
}

func (s *service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/increment":
		s.state.Counter++
		io.WriteString(w, strconv.Itoa(s.state.Counter)+"\n")
	case r.Method == http.MethodPost && r.URL.Path == "/message":
		b, err := io.ReadAll(io.LimitReader(r.Body, 4096))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.state.Messages = append(s.state.Messages, string(b))
		io.WriteString(w, strconv.Itoa(len(s.state.Messages))+"\n")
	case r.Method == http.MethodGet && r.URL.Path == "/state":
		st := s.state
		st.Pid = os.Getpid()
		if st.Messages == nil {
			st.Messages = []string{}
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(st)
	default:
		http.NotFound(w, r)
	}
}

// serve runs the service on addr until ctx ends; listening reports the
// address once it listens.
func serve(ctx context.Context, addr string, listening func(string)) error {
	// Plain TCP: Go listens with MPTCP where the kernel has it, and CRIU
	// cannot dump MPTCP sockets ("Unsupported proto 262").
	var lc net.ListenConfig
	lc.SetMultipathTCP(false)
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: &service{}, ReadHeaderTimeout: 5 * time.Second}
	srv.SetKeepAlivesEnabled(false)
	listening(ln.Addr().String())
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// check asks the service at addr for its state.
func check(addr string) int {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + addr + "/state")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer resp.Body.Close()
	var st State
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil || resp.StatusCode != http.StatusOK {
		fmt.Fprintf(os.Stderr, "state: %s, %v\n", resp.Status, err)
		return 1
	}
	return 0
}
