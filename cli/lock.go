package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"yakimg/builder"
	"yakimg/rootfs"
)

func runLock(ctx context.Context, args []string, std Stdio) int {
	fs := newFlags("lock", "[--update] [--project DIR] [--cache DIR]",
		"Resolves the packages of yakimg.toml (Debian 'packages', [alpine] 'packages') to their\n"+
			"whole dependency closure and pins every package of it in yakimg.lock: name, version,\n"+
			"architecture, file name, size, sha256 (for Alpine also the index checksum and the\n"+
			"control and data digests). Debian indexes come from this host's apt lists or the\n"+
			"[[debian.mirror]] entries, Alpine's from [alpine] url, verified with the trusted keys.\n"+
			"Without --update an existing lock that covers the package lists is kept as it is.",
		"apt-get update && yakimg lock --update", std)
	var pf projectFlags
	pf.register(fs)
	update := fs.Bool("update", false, "resolve again from the current indexes and rewrite the lock")
	if code := parse(fs, args, std); code >= 0 {
		return code
	}
	proj, err := pf.load()
	if err != nil {
		return fail(std, "lock", exitUsage, err)
	}
	path := filepath.Join(proj.Root, builder.LockFile)
	if !*update {
		old, err := rootfs.ReadLock(path)
		switch {
		case err == nil && old.Covers(proj.Sources, proj.Want()):
			fmt.Fprintf(std.Stderr, "yakimg lock: %s is up to date (%d packages); --update re-resolves\n", path, len(old.Packages))
			return exitOK
		case err != nil && !errors.Is(err, os.ErrNotExist):
			return fail(std, "lock", exitError, err)
		}
	}
	lock, err := rootfs.Resolve(ctx, proj.Sources, proj.Want(), rootfs.Cache{Dir: pf.cache})
	if err != nil {
		return fail(std, "lock", exitError, err)
	}
	if err := lock.Write(path); err != nil {
		return fail(std, "lock", exitError, err)
	}
	var total int64
	for _, p := range lock.Packages {
		fmt.Fprintf(std.Stderr, "yakimg lock: %-40s %-28s %-7s %s sha256:%.12s\n", p.Name, p.Version, p.Arch, p.Source, p.SHA256)
		total += p.Size
	}
	fmt.Fprintf(std.Stderr, "yakimg lock: wrote %s: %d packages, %.1f MB (%s)\n", path, len(lock.Packages), float64(total)/1e6, lock.Digest())
	return exitOK
}
