// Command test-crash-on-start is a fault to inject: a service that exits
// with status 1 the moment it starts, whatever its arguments. As a
// component it never becomes ready; as the binary of an upgrade
// (graphctl upgrade <component> --binary /usr/local/bin/test-crash-on-start)
// it dies before it takes anything over, and the old instance serves on.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintf(os.Stderr, "test-crash-on-start: failing on purpose (pid %d)\n", os.Getpid())
	os.Exit(1)
}
