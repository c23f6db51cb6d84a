// Command yakimg builds a reproducible YakirOS test image and boots it.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"yakimg/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
