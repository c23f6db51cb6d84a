package rootfs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"

	"yakimg/internal/atomicfile"
	"yakimg/rootfs/debian"
)

// FetchState is where one package is in Fetch.
type FetchState int

const (
	Cached      FetchState = iota // already in the cache, digest checked
	Downloading                   // download started
	Fetched                       // downloaded, verified and stored
	Failed                        // gave up; the event's Err says why
)

func (s FetchState) String() string {
	switch s {
	case Cached:
		return "cached"
	case Downloading:
		return "downloading"
	case Fetched:
		return "fetched"
	case Failed:
		return "failed"
	}
	return fmt.Sprintf("FetchState(%d)", int(s))
}

// FetchEvent reports one step of one package.
type FetchEvent struct {
	Package LockedPackage
	State   FetchState
	Note    string // e.g. why a cached file is fetched again
	Err     error  // Failed only
}

// Progress receives fetch events. Fetch serialises its calls, so it need
// not be safe for concurrent use.
type Progress func(FetchEvent)

// fetchParallel bounds concurrent downloads: enough to hide per-request
// latency without hammering the mirror.
const fetchParallel = 4

// Fetch fills the cache with every locked package that is missing, from
// the package's source as s configures it, and verifies each file's digest
// before it enters the cache. Packages already cached are hashed too; a
// corrupted one is fetched again. Every failure is reported, not just the
// first.
func Fetch(ctx context.Context, c Cache, s Sources, pkgs []LockedPackage, progress Progress) error {
	s = s.withDefaults()
	var mu sync.Mutex
	report := func(e FetchEvent) {
		if progress == nil {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		progress(e)
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
			errs[i] = fetchOne(ctx, c, s, p, report)
			if errs[i] != nil {
				report(FetchEvent{Package: p, State: Failed, Err: errs[i]})
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func fetchOne(ctx context.Context, c Cache, s Sources, p LockedPackage, report func(FetchEvent)) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("package %s: %w", p, err)
	}
	note := ""
	if c.Has(p) {
		path := c.Path(p.SHA256)
		got, err := fileSHA256(path)
		if err != nil {
			return fmt.Errorf("package %s: %w", p, err)
		}
		if got == p.SHA256 {
			report(FetchEvent{Package: p, State: Cached})
			return nil
		}
		note = fmt.Sprintf("cache file %s has sha256 %s, lock wants %s; fetching it again", path, got, p.SHA256)
		if err := os.Remove(path); err != nil {
			return fmt.Errorf("package %s: remove corrupt cache file: %w", p, err)
		}
	}
	dir, err := os.MkdirTemp("", "yakimg-fetch-")
	if err != nil {
		return fmt.Errorf("package %s: %w", p, err)
	}
	defer os.RemoveAll(dir)
	report(FetchEvent{Package: p, State: Downloading, Note: note})
	var file string
	switch p.Source {
	case "debian":
		file, err = fetchDebian(ctx, s.Debian, dir, p)
	case "alpine":
		file, err = fetchAlpine(ctx, s.Alpine, dir, p)
	default:
		err = fmt.Errorf("package %s: unknown source %q", p, p.Source)
	}
	if err != nil {
		return err
	}
	if err := c.Put(p, file); err != nil {
		return err
	}
	report(FetchEvent{Package: p, State: Fetched})
	return nil
}

// fetchDebian downloads p into dir and returns the file's path: with
// apt-get when no mirror is configured, else from the first mirror that
// has it with the locked size and digest.
func fetchDebian(ctx context.Context, d DebianSource, dir string, p LockedPackage) (string, error) {
	if len(d.Mirrors) == 0 {
		if err := aptDownload(ctx, dir, p); err != nil {
			return "", err
		}
		debs, err := filepath.Glob(filepath.Join(dir, "*.deb"))
		if err != nil || len(debs) != 1 {
			return "", fmt.Errorf("package %s: apt-get download left %d .deb files, want 1", p, len(debs))
		}
		return debs[0], nil
	}
	want := debian.Package{Name: p.Name, Version: p.Version, Architecture: p.Arch, Filename: p.Filename, Size: p.Size, SHA256: p.SHA256}
	var errs []error
	for _, m := range d.Mirrors {
		file := filepath.Join(dir, path.Base(p.Filename))
		err := atomicfile.Write(file, func(w io.Writer) error { return d.mirror(m).FetchPackage(ctx, want, w) })
		if err == nil {
			return file, nil
		}
		errs = append(errs, err)
	}
	return "", fmt.Errorf("package %s: no mirror has it: %w", p, errors.Join(errs...))
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
