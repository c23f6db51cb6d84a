package rootfs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

// Progress receives one line per fetch event. FetchApt serialises its
// calls, so it need not be safe for concurrent use.
type Progress func(msg string)

// fetchParallel bounds concurrent downloads: enough to hide per-request
// latency without hammering the mirror.
const fetchParallel = 4

// FetchApt fills the cache with every locked package that is missing,
// using the ordinary Debian client (`apt-get download name:arch=version`),
// and verifies each file's digest before it enters the cache. Packages
// already cached are hashed too; a corrupted one is fetched again. Every
// failure is reported, not just the first.
func FetchApt(ctx context.Context, c Cache, pkgs []LockedPackage, progress Progress) error {
	var mu sync.Mutex
	say := func(format string, args ...any) {
		if progress == nil {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		progress(fmt.Sprintf(format, args...))
	}
	errs := make([]error, len(pkgs))
	sem := make(chan struct{}, fetchParallel)
	var wg sync.WaitGroup
	for i, p := range pkgs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			errs[i] = fetchOne(ctx, c, p, say)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func fetchOne(ctx context.Context, c Cache, p LockedPackage, say func(string, ...any)) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("package %s: %w", p, err)
	}
	if c.Has(p) {
		path := c.Path(p.SHA256)
		got, err := fileSHA256(path)
		if err != nil {
			return fmt.Errorf("package %s: %w", p, err)
		}
		if got == p.SHA256 {
			say("%s: cached", p)
			return nil
		}
		say("%s: cache file %s has sha256 %s, lock wants %s; fetching it again", p, path, got, p.SHA256)
		if err := os.Remove(path); err != nil {
			return fmt.Errorf("package %s: remove corrupt cache file: %w", p, err)
		}
	}
	if p.Source != "debian" {
		return fmt.Errorf("package %s: source %q cannot be fetched with apt-get", p, p.Source)
	}
	dir, err := os.MkdirTemp("", "yakimg-fetch-")
	if err != nil {
		return fmt.Errorf("package %s: %w", p, err)
	}
	defer os.RemoveAll(dir)
	say("%s: downloading %s", p, p.Filename)
	if err := aptDownload(ctx, dir, p); err != nil {
		return err
	}
	debs, err := filepath.Glob(filepath.Join(dir, "*.deb"))
	if err != nil || len(debs) != 1 {
		return fmt.Errorf("package %s: apt-get download left %d .deb files, want 1", p, len(debs))
	}
	if err := c.Put(p, debs[0]); err != nil {
		return err
	}
	say("%s: fetched (%d bytes, sha256 %s)", p, p.Size, p.SHA256)
	return nil
}

// aptDownload runs `apt-get download` in dir. As root, apt would try to
// drop to its _apt user, which cannot write to our private temp dir, and
// fall back to root with a warning; naming root up front skips both.
func aptDownload(ctx context.Context, dir string, p LockedPackage) error {
	spec := p.Name + ":" + p.Arch + "=" + p.Version
	cmd := exec.CommandContext(ctx, "apt-get", "download", "-q", "-o", "APT::Sandbox::User=root", spec)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "LC_ALL=C") // its messages are matched below
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	if err == nil {
		return nil
	}
	var msgs []string
	for _, line := range strings.Split(stderr.String(), "\n") {
		if strings.HasPrefix(line, "E: ") {
			msgs = append(msgs, line)
		}
	}
	msg := strings.Join(msgs, "; ")
	if msg == "" {
		msg = strings.TrimSpace(stderr.String())
	}
	for _, gone := range []string{"was not found", "Unable to locate package", "has no installation candidate", "Can't select"} {
		if strings.Contains(msg, gone) {
			return fmt.Errorf("package %s version %s is no longer offered by the archive (apt-get: %s); refresh the lock with 'yakimg lock --update' after 'apt-get update'", p.Name, p.Version, msg)
		}
	}
	return fmt.Errorf("package %s: apt-get download %s: %w: %s", p, spec, err, msg)
}
