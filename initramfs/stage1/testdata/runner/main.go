// Command runner is yakimg-runner reduced to stage 1, for the boot test.
package main

import (
	"context"
	"os"

	"yakimg/initramfs/stage1"
)

func main() {
	ctx := context.Background()
	if len(os.Args) > 1 && os.Args[1] == "sentinel" {
		os.Exit(stage1.SentinelMain(ctx, os.Args[2:], os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(stage1.Main(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
