package supervise

import (
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"
)

// launchEnv marks a process Start forked: it carries the component name.
const launchEnv = "_YAKIROS_LAUNCH_COMPONENT"

// The launcher runs in the forked child before the component's binary, as
// this same program (/proc/self/exe), so that the log's first line is written
// before the component can write anything, with the pid it will keep, and so
// that a failed exec is reported to the supervisor. It runs from init so any
// program linking this package (graph-resolver, its tests) can serve as one.
func init() {
	if name, ok := os.LookupEnv(launchEnv); ok {
		os.Exit(launch(name))
	}
}

// launch returns only when exec failed. Fd 3 is the status pipe of Start.
func launch(name string) int {
	status := os.NewFile(3, "exec-status")
	syscall.CloseOnExec(3)
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, launchEnv+"=") {
			env = append(env, kv)
		}
	}
	fmt.Fprintf(os.Stdout, "[%d] Starting component '%s' (pid %d)\n", time.Now().Unix(), name, os.Getpid())
	err := syscall.Exec(os.Args[0], os.Args, env)
	msg := fmt.Sprintf("exec %s: %v", os.Args[0], err)
	fmt.Fprintln(os.Stderr, msg)
	status.WriteString(msg)
	return 127
}
