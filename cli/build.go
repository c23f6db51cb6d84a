package cli

import (
	"context"
	"fmt"
	"strings"

	"yakimg/builder"
	"yakimg/rootfs"
)

func runBuild(ctx context.Context, args []string, std Stdio) int {
	fs := newFlags("build", "[-o DIR] [--offline] [--project DIR] [--cache DIR]",
		"Assembles the image from yakimg.lock, the package cache and the source tree: vmlinuz,\n"+
			"initramfs.cpio.zst, disk.img, manifest.json and boot.json. The same inputs give the same\n"+
			"bytes on any machine. Packages missing from the cache are fetched first (as 'yakimg\n"+
			"fetch' does); with --offline nothing is fetched and a missing package fails the build at\n"+
			"once, naming every one. The output directory is replaced atomically.",
		"yakimg build --offline -o out && sha256sum out/*", std)
	var pf projectFlags
	pf.register(fs)
	out := fs.String("o", "out", "output `DIR`")
	offline := fs.Bool("offline", false, "never touch the network: build from the cache or fail naming what is missing")
	if code := parse(fs, args, std); code >= 0 {
		return code
	}
	if fs.NArg() > 0 {
		return fail(std, "build", exitUsage, fmt.Errorf("unexpected argument %q", fs.Arg(0)))
	}
	proj, lock, err := pf.loadWithLock()
	if err != nil {
		return fail(std, "build", exitUsage, err)
	}
	cache := rootfs.Cache{Dir: pf.cache}
	if missing := missingFromCache(cache, lock); len(missing) > 0 {
		if *offline {
			return fail(std, "build", exitError, fmt.Errorf("--offline: %d packages are not in the cache %s: %s; run 'yakimg fetch' while online",
				len(missing), cache.Dir, strings.Join(missing, ", ")))
		}
		fmt.Fprintf(std.Stderr, "yakimg build: fetching %d packages missing from the cache\n", len(missing))
		progress := newFetchProgress(std.Stderr, lock.Packages)
		err := rootfs.Fetch(ctx, cache, proj.Sources, lock.Packages, progress.event)
		progress.finish()
		if err != nil {
			return fail(std, "build", exitError, err)
		}
	}
	_, err = builder.Build(ctx, builder.Options{
		Project: proj, Lock: lock, Cache: cache, OutDir: *out,
		Progress: func(format string, a ...any) { fmt.Fprintf(std.Stderr, "yakimg build: "+format+"\n", a...) },
	})
	if err != nil {
		return fail(std, "build", exitError, err)
	}
	return exitOK
}

// missingFromCache names every locked package the cache lacks, so that
// one error can list them all rather than failing on the first.
func missingFromCache(c rootfs.Cache, l *rootfs.Lock) []string {
	var missing []string
	for _, p := range l.Packages {
		if !c.Has(p) {
			missing = append(missing, p.Name+"="+p.Version)
		}
	}
	return missing
}
