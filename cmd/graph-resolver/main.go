// Command graph-resolver is YakirOS's init; see package yakimg/yakiros/resolver.
package main

import (
	"context"
	"os"

	"yakimg/yakiros/resolver"
)

func main() {
	os.Exit(resolver.Main(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
