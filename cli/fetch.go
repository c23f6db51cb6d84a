package cli

import (
	"context"
	"fmt"

	"yakimg/rootfs"
)

func runFetch(ctx context.Context, args []string, std Stdio) int {
	fs := newFlags("fetch", "[--project DIR] [--cache DIR]",
		"Downloads every package of yakimg.lock that is not in the cache, several at a time:\n"+
			"Debian packages with 'apt-get download' or from the [[debian.mirror]] entries, Alpine\n"+
			"packages from [alpine] url (signature and data hash checked). Every digest is verified\n"+
			"(cached files too) and each file is stored under its sha256; a package whose bytes do\n"+
			"not match the lock is refused. On a terminal a progress bar shows packages and bytes.",
		"yakimg fetch --cache /var/cache/yakimg", std)
	var pf projectFlags
	pf.register(fs)
	if code := parse(fs, args, std); code >= 0 {
		return code
	}
	proj, lock, err := pf.loadWithLock()
	if err != nil {
		return fail(std, "fetch", exitUsage, err)
	}
	progress := newFetchProgress(std.Stderr, lock.Packages)
	err = rootfs.Fetch(ctx, rootfs.Cache{Dir: pf.cache}, proj.Sources, lock.Packages, progress.event)
	progress.finish()
	if err != nil {
		return fail(std, "fetch", exitError, err)
	}
	fmt.Fprintf(std.Stderr, "yakimg fetch: %d packages verified in %s\n", len(lock.Packages), pf.cache)
	return exitOK
}
