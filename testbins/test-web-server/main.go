// Command test-web-server is a YakirOS test service: an HTTP/1.1 server
// (keep-alive on) whose GET / answers with its version, so a client can tell
// which build answered, and whose GET /health answers 200 while the
// directory the files-setup component creates exists, 503 when it does not.
// It logs one line per request to stdout and stops cleanly on SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8080", "TCP address to listen on")
	version := flag.String("version", "v1", "version GET / answers with")
	files := flag.String("files", "/run/test-files", "directory whose presence GET /health reports")
	flag.Parse()
	log.SetOutput(os.Stdout)
	log.SetFlags(log.LstdFlags | log.Lmicroseconds)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := serve(ctx, *listen, *version, *files); err != nil {
		log.Fatal(err)
	}
}

// serve answers requests until ctx ends, then finishes those in flight.
func serve(ctx context.Context, addr, version, files string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", addr, err)
	}
	srv := &http.Server{Handler: handler(version, files), ReadHeaderTimeout: 10 * time.Second}
	log.Printf("test-web-server %s listening on %s (pid %d)", version, ln.Addr(), os.Getpid())
	done := make(chan error, 1)
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		done <- srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	if err := <-done; err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Printf("test-web-server %s stopped", version)
	return nil
}

func handler(version, files string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Version", version)
		fmt.Fprintf(w, "test-web-server %s\n", version)
	})
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		fi, err := os.Stat(files)
		if err == nil && !fi.IsDir() {
			err = fmt.Errorf("%s is not a directory", files)
		}
		if err != nil {
			http.Error(w, "unhealthy: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	return logged(mux)
}

// statusWriter remembers the status code for the request log.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}

func logged(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		h.ServeHTTP(sw, r)
		log.Printf("%s %s %s -> %d", r.RemoteAddr, r.Method, r.URL.Path, sw.code)
	})
}
