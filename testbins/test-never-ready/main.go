// Command test-never-ready is a fault to inject: a service that starts and
// then does nothing, whatever its arguments. It never sends READY=1, and as
// the binary of an upgrade it never says HELLO to the old instance, so
// readiness and handoff timeouts are what end it. It exits 0 on SIGTERM or
// SIGINT.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	fmt.Printf("test-never-ready: started (pid %d); never ready\n", os.Getpid())
	<-stop
}
