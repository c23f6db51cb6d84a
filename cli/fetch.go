package cli

import (
	"context"
	"fmt"

	"yakimg/rootfs"
)

func runFetch(ctx context.Context, args []string, std Stdio) int {
	fs := newFlags("fetch", "[--project DIR] [--cache DIR]",
		"Downloads every package of yakimg.lock that is not in the cache with 'apt-get download',\n"+
			"verifies every digest (cached files too) and stores each file under its sha256.\n"+
			"A package whose bytes do not match the lock is refused.",
		"yakimg fetch --cache /var/cache/yakimg", std)
	var pf projectFlags
	pf.register(fs)
	if code := parse(fs, args, std); code >= 0 {
		return code
	}
	_, lock, err := pf.loadWithLock()
	if err != nil {
		return fail(std, "fetch", exitUsage, err)
	}
	err = rootfs.FetchApt(ctx, rootfs.Cache{Dir: pf.cache}, lock.Packages, func(msg string) {
		fmt.Fprintf(std.Stderr, "yakimg fetch: %s\n", msg)
	})
	if err != nil {
		return fail(std, "fetch", exitError, err)
	}
	fmt.Fprintf(std.Stderr, "yakimg fetch: %d packages verified in %s\n", len(lock.Packages), pf.cache)
	return exitOK
}
