// Command graph-resolver is YakirOS's init; see package yakimg/yakiros/resolver.
// Started as yakiros-isolate-exec it is the helper that sets up an isolated
// component's namespaces and executes it (package yakimg/yakiros/isolate);
// started as yakiros-health-runner it runs PID 1's command health checks
// (package yakimg/yakiros/health).
package main

import (
	"context"
	"os"
	"path/filepath"

	"yakimg/yakiros/health"
	"yakimg/yakiros/isolate"
	"yakimg/yakiros/resolver"
)

func main() {
	if filepath.Base(os.Args[0]) == isolate.HelperName {
		os.Exit(isolate.Helper(os.Args[1:], os.Stderr))
	}
	if filepath.Base(os.Args[0]) == health.RunnerName {
		os.Exit(health.RunnerMain())
	}
	os.Exit(resolver.Main(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
