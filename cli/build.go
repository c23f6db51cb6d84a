package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"yakimg/builder"
	"yakimg/rootfs"
)

func runBuild(ctx context.Context, args []string, std Stdio) int {
	fs := newFlags("build", "[-o DIR] [--project DIR] [--cache DIR]",
		"Assembles the image from yakimg.lock, the package cache and the source tree: vmlinuz,\n"+
			"initramfs.cpio.zst, disk.img, manifest.json and boot.json. The same inputs give the same\n"+
			"bytes on any machine. The build reads only the cache (run 'yakimg fetch' first), so it\n"+
			"works offline; the output directory is replaced atomically.",
		"yakimg build -o out && sha256sum out/*", std)
	var pf projectFlags
	pf.register(fs)
	out := fs.String("o", "out", "output `DIR`")
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
	if err := checkCached(cache, lock); err != nil {
		return fail(std, "build", exitError, err)
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

// checkCached names every locked package missing from the cache at once,
// rather than failing on the first.
func checkCached(c rootfs.Cache, l *rootfs.Lock) error {
	var missing []string
	for _, p := range l.Packages {
		if !c.Has(p) {
			missing = append(missing, p.Name+"="+p.Version)
		}
	}
	if len(missing) > 0 {
		return errors.New("not in the cache " + c.Dir + ": " + strings.Join(missing, ", ") + "; run 'yakimg fetch'")
	}
	return nil
}
