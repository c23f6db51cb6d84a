// Command graphctl talks to graph-resolver; see package yakimg/yakiros/graphctl.
package main

import (
	"context"
	"os"

	"yakimg/yakiros/graphctl"
)

func main() {
	os.Exit(graphctl.Main(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
