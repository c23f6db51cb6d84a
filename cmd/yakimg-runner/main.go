// Command yakimg-runner is the guest side of yakimg: stage 1 of the boot as
// the initramfs's /init, its watchdog ("sentinel"), the suite runner
// ("suites") that YakirOS starts as a component, and the hot-swap suite's
// clients ("echo-load"), which the runner starts in a process of their own.
package main

import (
	"context"
	"fmt"
	"os"

	"yakimg/initramfs/stage1"
	"yakimg/suites"
	"yakimg/suites/echoload"
)

func main() {
	ctx := context.Background()
	args := os.Args[1:]
	verb := ""
	if len(args) > 0 {
		verb, args = args[0], args[1:]
	}
	switch {
	case verb == "suites":
		os.Exit(suites.Main(ctx, args, os.Stdin, os.Stdout, os.Stderr))
	case verb == "echo-load":
		os.Exit(echoload.Main(ctx, args, os.Stdin, os.Stdout, os.Stderr))
	case verb == "sentinel":
		os.Exit(stage1.SentinelMain(ctx, args, os.Stdin, os.Stdout, os.Stderr))
	case os.Getpid() == 1:
		os.Exit(stage1.Main(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	default:
		fmt.Fprintln(os.Stderr, "usage: yakimg-runner suites [flags] | sentinel [flags]  (as PID 1 in the initramfs it runs stage 1)")
		os.Exit(2)
	}
}
