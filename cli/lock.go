package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"yakimg/builder"
	"yakimg/rootfs"
)

func runLock(ctx context.Context, args []string, std Stdio) int {
	fs := newFlags("lock", "[--update] [--project DIR]",
		"Pins the packages listed in yakimg.toml to the versions apt offers now (name, version,\n"+
			"architecture, file name, size, sha256) and writes yakimg.lock. Without --update an\n"+
			"existing lock that covers the package list is kept as it is.",
		"apt-get update && yakimg lock --update", std)
	var pf projectFlags
	pf.register(fs)
	update := fs.Bool("update", false, "re-resolve every package to the version apt offers now")
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
		case err == nil && covers(old, proj.Packages):
			fmt.Fprintf(std.Stderr, "yakimg lock: %s is up to date (%d packages); --update re-resolves\n", path, len(old.Packages))
			return exitOK
		case err != nil && !errors.Is(err, os.ErrNotExist):
			return fail(std, "lock", exitError, err)
		}
	}
	pkgs, err := rootfs.LockFromApt(ctx, proj.Packages)
	if err != nil {
		return fail(std, "lock", exitError, err)
	}
	lock := &rootfs.Lock{Format: rootfs.LockFormat, Packages: pkgs}
	if err := lock.Write(path); err != nil {
		return fail(std, "lock", exitError, err)
	}
	for _, p := range lock.Packages {
		fmt.Fprintf(std.Stderr, "yakimg lock: %s %s %s sha256:%.12s\n", p.Name, p.Version, p.Arch, p.SHA256)
	}
	fmt.Fprintf(std.Stderr, "yakimg lock: wrote %s (%s)\n", path, lock.Digest())
	return exitOK
}

// covers reports whether every wanted package name is pinned in l.
func covers(l *rootfs.Lock, wanted []string) bool {
	for _, w := range wanted {
		if !slices.ContainsFunc(l.Packages, func(p rootfs.LockedPackage) bool { return p.Name == w }) {
			return false
		}
	}
	return true
}
