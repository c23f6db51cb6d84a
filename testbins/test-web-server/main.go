// Command test-web-server is a YakirOS test service: an HTTP/1.1 server
// (keep-alive on) whose GET / answers with its version, so a client can tell
// which build and instance answered, and whose GET /health answers 200
// while the directory the files-setup component creates exists, 503 when it
// does not. It logs one line per request to stdout and stops cleanly on
// SIGTERM. Started with $NOTIFY_SOCKET set, it sends READY=1 there once it
// serves.
//
// With handoff = "fd-passing" graph-resolver upgrades it without dropping a
// connection: the running instance finishes the response it is writing,
// then hands its listener, its keep-alive connections and the requests it
// has read only in part to the new one (testbins/internal/hotswap). That is
// why it speaks HTTP itself: net/http cannot give up its connections. The
// version is the build's ("v1" unless linked with -ldflags -X
// main.buildVersion=..., or --version), then "+" and the number of handoffs
// since the last fresh start.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"yakimg/testbins/internal/hotswap"
)

// buildVersion is the version of this build, set at link time.
var buildVersion = "v1"

func main() {
	listen := flag.String("listen", "127.0.0.1:8080", "TCP address to listen on (an upgraded instance serves the old one's)")
	version := flag.String("version", buildVersion, "version of this build, which GET / answers with")
	files := flag.String("files", "/run/test-files", "directory whose presence GET /health reports")
	flag.Parse()
	log.SetOutput(os.Stdout)
	log.SetFlags(log.LstdFlags | log.Lmicroseconds)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	site := &site{files: *files}
	svc := &hotswap.Service{Name: "test-web-server", Build: *version, Handle: site.serve}
	if err := svc.Run(ctx, *listen, os.Getenv("NOTIFY_SOCKET")); err != nil {
		log.Fatal(err)
	}
}

// site is what the server answers.
type site struct {
	files string
}

// serve answers the requests of one connection in order until the client
// or a response closes it. Each request is consumed before its response is
// written, so a handoff finds it either unread or answered.
func (s *site) serve(c *hotswap.Conn) error {
	for {
		req, n, e := parseHead(c.Buffered())
		if e != nil {
			c.Consume(len(c.Buffered()))
			log.Printf("%s bad request (%s) -> %d", c.RemoteAddr(), e.why, e.code)
			return c.Finish((&response{code: e.code, header: []string{"X-Content-Type-Options: nosniff"}, body: e.why + "\n"}).bytes(nil, true))
		}
		if req == nil {
			if err := c.Fill(); err != nil {
				return err
			}
			continue
		}
		closing := req.close
		total := n + int(req.length)
		if req.expect && len(c.Buffered()) < total {
			// The client waits for "100 Continue" before it sends the
			// body. Nothing here needs a body: answer now instead, and
			// close, since the body may follow or not.
			total, closing = len(c.Buffered()), true
		}
		for len(c.Buffered()) < total {
			if err := c.Fill(); err != nil {
				return err
			}
		}
		c.Consume(total)
		resp := s.answer(req, c.Version())
		log.Printf("%s %s %s -> %d", c.RemoteAddr(), req.method, req.path(), resp.code)
		if closing {
			return c.Finish(resp.bytes(req, true))
		}
		if err := c.Write(resp.bytes(req, false)); err != nil {
			return err
		}
	}
}

// answer routes a request: GET (or HEAD) of / and /health.
func (s *site) answer(req *request, version string) *response {
	var get func() *response
	switch req.path() {
	case "/":
		get = func() *response {
			return &response{code: http.StatusOK, header: []string{"X-Version: " + version}, body: "test-web-server " + version + "\n"}
		}
	case "/health":
		get = s.health
	default:
		return &response{code: http.StatusNotFound, header: []string{"X-Content-Type-Options: nosniff"}, body: "404 page not found\n"}
	}
	if req.method != http.MethodGet && req.method != http.MethodHead {
		return &response{code: http.StatusMethodNotAllowed, header: []string{"Allow: GET, HEAD", "X-Content-Type-Options: nosniff"}, body: "Method Not Allowed\n"}
	}
	return get()
}

func (s *site) health() *response {
	fi, err := os.Stat(s.files)
	if err == nil && !fi.IsDir() {
		err = fmt.Errorf("%s is not a directory", s.files)
	}
	if err != nil {
		return &response{code: http.StatusServiceUnavailable, header: []string{"X-Content-Type-Options: nosniff"}, body: "unhealthy: " + err.Error() + "\n"}
	}
	return &response{code: http.StatusOK, body: "ok\n"}
}
