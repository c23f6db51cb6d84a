// Command test-echo-server is a YakirOS test service: a TCP server that
// answers every line a client sends with "<version> <line>", so a client can
// tell which build, and which instance since the last fresh start, answered
// (the hot-swap suite relies on it). It serves many clients at once and logs
// to stdout. Started with $NOTIFY_SOCKET set (YakirOS readiness "notify"),
// it sends READY=1 there once it serves.
//
// With handoff = "fd-passing" graph-resolver upgrades it without a dropped
// connection or line: the running instance hands its listener, every
// connection and the lines it has read but not answered to the new one
// (testbins/internal/hotswap). The version is the build's ("v1" unless
// linked with -ldflags -X main.buildVersion=..., or --version), then "+"
// and the number of handoffs since the last fresh start: "v1", "v1+1",
// "v2+2"...
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"

	"yakimg/testbins/internal/hotswap"
)

// buildVersion is the version of this build, set at link time.
var buildVersion = "v1"

func main() {
	listen := flag.String("listen", "127.0.0.1:7070", "TCP address to listen on (an upgraded instance serves the old one's)")
	version := flag.String("version", buildVersion, "version of this build, put before every reply")
	flag.Parse()
	log.SetOutput(os.Stdout)
	log.SetFlags(log.LstdFlags | log.Lmicroseconds)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	svc := &hotswap.Service{Name: "test-echo-server", Build: *version, Handle: echo}
	if err := svc.Run(ctx, *listen, os.Getenv("NOTIFY_SOCKET")); err != nil {
		log.Fatal(err)
	}
}

// echo answers each line of one client until it hangs up; a last line
// without a newline is answered too.
func echo(c *hotswap.Conn) error {
	for {
		line, err := c.ReadLine()
		if err != nil {
			return err
		}
		if err := c.Write(fmt.Appendf(nil, "%s %s\n", c.Version(), line)); err != nil {
			return err
		}
	}
}
