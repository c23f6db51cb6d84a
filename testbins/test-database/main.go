// Command test-database is a YakirOS test service: a tiny key-value store
// over TCP that keeps its data on the storage the storage-setup component
// checked. The protocol is one request line, one reply line:
//
//	SET <key> <value>   → OK            (the value is the rest of the line)
//	GET <key>           → VALUE <value> | NOT_FOUND
//	PING                → PONG <version>
//	anything else       → ERR <why>
//
// Every SET is appended to <data>/db.log and synced before the reply, and the
// log is replayed at start, so data survives a restart. With --ready-file it
// creates that file once it has replayed the log and listens (YakirOS
// readiness "file"). It logs to stdout and stops cleanly on SIGTERM.
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
	"strings"
	"sync"
	"syscall"

	"yakimg/testbins/internal/tcpserve"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:7071", "TCP address to listen on")
	version := flag.String("version", "v1", "version PING answers with")
	data := flag.String("data", "/checkpoint/test-database", "directory holding the data")
	readyFile := flag.String("ready-file", "", "file to create once the data is loaded and the port listens")
	flag.Parse()
	log.SetOutput(os.Stdout)
	log.SetFlags(log.LstdFlags | log.Lmicroseconds)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	db, err := open(*data)
	if err != nil {
		log.Fatal(err)
	}
	defer db.close()
	if err := serve(ctx, *listen, *version, *readyFile, db); err != nil {
		log.Fatal(err)
	}
}

// store is the data and its log.
type store struct {
	mu   sync.Mutex
	kv   map[string]string
	file *os.File
}

// open creates dir if needed and replays its log.
func open(dir string) (*store, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	path := filepath.Join(dir, "db.log")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open data: %w", err)
	}
	s := &store{kv: map[string]string{}, file: f}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		key, value, ok := parseSet(sc.Text())
		if !ok {
			f.Close()
			return nil, fmt.Errorf("%s:%d: not a SET record: %q", path, n, sc.Text())
		}
		s.kv[key] = value
	}
	if err := sc.Err(); err != nil {
		f.Close()
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	log.Printf("loaded %d keys from %s", len(s.kv), path)
	return s, nil
}

func (s *store) close() error { return s.file.Close() }

// parseSet splits "SET <key> <value>"; the key has no spaces, the value is
// the non-empty rest.
func parseSet(line string) (key, value string, ok bool) {
	rest, ok := strings.CutPrefix(line, "SET ")
	if !ok {
		return "", "", false
	}
	key, value, ok = strings.Cut(rest, " ")
	return key, value, ok && key != "" && value != ""
}

func (s *store) set(key, value string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := fmt.Fprintf(s.file, "SET %s %s\n", key, value); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	if err := s.file.Sync(); err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	s.kv[key] = value
	return nil
}

func (s *store) get(key string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.kv[key]
	return v, ok
}

// answer is the reply line to one request line.
func (s *store) answer(line, version string) string {
	cmd, _, _ := strings.Cut(line, " ")
	switch cmd {
	case "PING":
		return "PONG " + version
	case "SET":
		key, value, ok := parseSet(line)
		if !ok {
			return "ERR usage: SET <key> <value>"
		}
		if err := s.set(key, value); err != nil {
			log.Printf("SET %s: %v", key, err)
			return "ERR " + err.Error()
		}
		return "OK"
	case "GET":
		key, ok := strings.CutPrefix(line, "GET ")
		if !ok || key == "" || strings.Contains(key, " ") {
			return "ERR usage: GET <key>"
		}
		if v, ok := s.get(key); ok {
			return "VALUE " + v
		}
		return "NOT_FOUND"
	default:
		return fmt.Sprintf("ERR unknown command %q (SET, GET, PING)", cmd)
	}
}

// serve accepts clients until ctx ends, then closes every connection. Once
// it listens it creates readyFile, unless that is "".
func serve(ctx context.Context, addr, version, readyFile string, db *store) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", addr, err)
	}
	log.Printf("test-database %s listening on %s (pid %d)", version, ln.Addr(), os.Getpid())
	if readyFile != "" {
		if err := markReady(readyFile, ln.Addr().String()); err != nil {
			ln.Close()
			return err
		}
		log.Printf("created %s", readyFile)
	}
	if err := tcpserve.Serve(ctx, ln, func(conn net.Conn) { session(conn, version, db) }); err != nil {
		return err
	}
	log.Printf("test-database %s stopped", version)
	return nil
}

// markReady creates path saying where the server listens. The content is
// written to a temporary file beside it and renamed into place, so the path
// appears at once with all of it: graph-resolver counts the server ready as
// soon as the name exists.
func markReady(path, addr string) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("ready file: %w", err)
	}
	_, err = fmt.Fprintf(f, "listening on %s (pid %d)\n", addr, os.Getpid())
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("ready file %s: %w", path, err)
	}
	return nil
}

// session answers one client's requests until it hangs up.
func session(conn net.Conn, version string, db *store) {
	defer conn.Close()
	r := bufio.NewReader(conn)
	for {
		line, err := r.ReadString('\n')
		if line != "" {
			if _, werr := fmt.Fprintf(conn, "%s\n", db.answer(strings.TrimRight(line, "\r\n"), version)); werr != nil {
				log.Printf("client %s: %v", conn.RemoteAddr(), werr)
				return
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				log.Printf("client %s: %v", conn.RemoteAddr(), err)
			}
			return
		}
	}
}
