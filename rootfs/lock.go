package rootfs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"

	"yakimg/internal/atomicfile"
)

// LockFormat is the lockfile format this code reads and writes. A lock
// with a higher format was written by a newer yakimg and is refused rather
// than half understood.
const LockFormat = 1

// Lock is the content of yakimg.lock: every package of the image pinned by
// name, version, architecture and sha256.
type Lock struct {
	Format   int             `json:"format"`
	Packages []LockedPackage `json:"packages"`
}

// LockedPackage pins one package file.
type LockedPackage struct {
	Name     string `json:"name"`
	Version  string `json:"version"`
	Arch     string `json:"arch"`
	Filename string `json:"filename"` // archive pool path
	Size     int64  `json:"size"`
	SHA256   string `json:"sha256"`
	Source   string `json:"source"` // "debian" for now
}

// String names the package the way messages to the user do.
func (p LockedPackage) String() string { return p.Name + " " + p.Version }

// ReadLock reads and validates a lockfile.
func ReadLock(path string) (*Lock, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read lock: %w", err)
	}
	// Check the format before anything else: a newer format may have fields
	// this version cannot know, and "upgrade yakimg" is the useful message.
	var head struct {
		Format *int `json:"format"`
	}
	if err := json.Unmarshal(b, &head); err != nil {
		return nil, fmt.Errorf("read lock %s: %w", path, err)
	}
	switch {
	case head.Format == nil:
		return nil, fmt.Errorf("read lock %s: no \"format\" field; is this a yakimg.lock?", path)
	case *head.Format > LockFormat:
		return nil, fmt.Errorf("read lock %s: format %d is newer than this yakimg understands (%d); upgrade yakimg", path, *head.Format, LockFormat)
	case *head.Format != LockFormat:
		return nil, fmt.Errorf("read lock %s: unknown format %d (this yakimg reads format %d)", path, *head.Format, LockFormat)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var l Lock
	if err := dec.Decode(&l); err != nil {
		return nil, fmt.Errorf("read lock %s: %w", path, err)
	}
	if err := l.validate(); err != nil {
		return nil, fmt.Errorf("read lock %s: %w", path, err)
	}
	return &l, nil
}

func (l *Lock) validate() error {
	seen := map[string]bool{}
	for i, p := range l.Packages {
		var missing []string
		for _, f := range []struct{ name, value string }{
			{"name", p.Name}, {"version", p.Version}, {"arch", p.Arch},
			{"filename", p.Filename}, {"sha256", p.SHA256}, {"source", p.Source},
		} {
			if f.value == "" {
				missing = append(missing, f.name)
			}
		}
		if p.Size <= 0 {
			missing = append(missing, "size")
		}
		if len(missing) > 0 {
			return fmt.Errorf("package #%d (%q): missing %s", i+1, p.Name, strings.Join(missing, ", "))
		}
		if !isSHA256Hex(p.SHA256) {
			return fmt.Errorf("package %s: sha256 %q is not 64 lowercase hex digits", p, p.SHA256)
		}
		key := p.Name + ":" + p.Arch
		if seen[key] {
			return fmt.Errorf("package %s:%s is locked twice", p.Name, p.Arch)
		}
		seen[key] = true
	}
	return nil
}

func isSHA256Hex(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// canonical is the one byte encoding of l: 2-space indented JSON, packages
// sorted by name then arch, trailing newline. l itself is not reordered.
func (l *Lock) canonical() []byte {
	c := Lock{Format: l.Format, Packages: append([]LockedPackage{}, l.Packages...)}
	sort.Slice(c.Packages, func(i, j int) bool {
		a, b := c.Packages[i], c.Packages[j]
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		return a.Arch < b.Arch
	})
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		panic(err) // strings and ints always marshal
	}
	return append(b, '\n')
}

// Write stores l at path in canonical form, atomically: readers see the
// old file or the new one, never a torn one.
func (l *Lock) Write(path string) error {
	if err := l.validate(); err != nil {
		return fmt.Errorf("write lock %s: %w", path, err)
	}
	return atomicfile.WriteFile(path, l.canonical())
}

// Digest identifies the lock's content: "sha256:<hex>" of its canonical
// encoding, so package order in memory does not change it.
func (l *Lock) Digest() string {
	sum := sha256.Sum256(l.canonical())
	return "sha256:" + hex.EncodeToString(sum[:])
}

// Find returns the locked package called name (for a name locked for
// several architectures, the first by architecture).
func (l *Lock) Find(name string) (LockedPackage, bool) {
	var found LockedPackage
	ok := false
	for _, p := range l.Packages {
		if p.Name == name && (!ok || p.Arch < found.Arch) {
			found, ok = p, true
		}
	}
	return found, ok
}

// LockFromApt pins each named package at apt's candidate version, from
// `apt-cache show`. A name may carry an architecture ("libc6:i386") and a
// version ("busybox-static=1:1.35.0-4"). It reads apt's lists only;
// nothing is downloaded. Every name apt does not know is reported.
func LockFromApt(ctx context.Context, names []string) ([]LockedPackage, error) {
	if len(names) == 0 {
		return nil, nil
	}
	native, err := command(ctx, "dpkg", "--print-architecture")
	if err != nil {
		return nil, err
	}
	// One apt-cache run for all names: each run loads apt's whole package
	// cache, which takes about a second.
	out, err := command(ctx, "apt-cache", append([]string{"show", "--no-all-versions"}, names...)...)
	// apt-cache fails only when it finds nothing at all; unknown names and
	// versions among known ones are silently left out of its output.
	if err != nil && !strings.Contains(err.Error(), "No packages found") {
		return nil, err
	}
	var stanzas []map[string]string
	for _, para := range strings.Split(strings.TrimSpace(out), "\n\n") {
		if para == "" {
			continue
		}
		f, err := parseStanza(para)
		if err != nil {
			return nil, fmt.Errorf("apt-cache show: %w", err)
		}
		stanzas = append(stanzas, f)
	}
	var pkgs []LockedPackage
	var errs []error
	for _, spec := range names {
		p, err := pickStanza(spec, native, stanzas)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		pkgs = append(pkgs, p)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return pkgs, nil
}

// pickStanza finds the stanza apt printed for spec (name[:arch][=version])
// and turns it into a locked package.
func pickStanza(spec, native string, stanzas []map[string]string) (LockedPackage, error) {
	nameArch, version, _ := strings.Cut(spec, "=")
	name, arch, _ := strings.Cut(nameArch, ":")
	what := "package " + nameArch
	if version != "" {
		what += " version " + version
	}
	var f map[string]string
	for _, s := range stanzas {
		a := s["Architecture"]
		if s["Package"] == name && (a == arch || arch == "" && (a == native || a == "all")) &&
			(version == "" || s["Version"] == version) {
			f = s
			break
		}
	}
	if f == nil {
		return LockedPackage{}, fmt.Errorf("%s is not known to apt; run 'apt-get update' and check the name and version", what)
	}
	for _, k := range []string{"Version", "Filename", "Size", "SHA256"} {
		if f[k] == "" {
			return LockedPackage{}, fmt.Errorf("%s: apt-cache shows no %s field (installed but offered by no archive?); run 'apt-get update'", what, k)
		}
	}
	p := LockedPackage{
		Name: name, Version: f["Version"], Arch: f["Architecture"],
		Filename: f["Filename"], SHA256: f["SHA256"], Source: "debian",
	}
	var err error
	if p.Size, err = strconv.ParseInt(f["Size"], 10, 64); err != nil || p.Size <= 0 {
		return LockedPackage{}, fmt.Errorf("%s: apt-cache shows bad Size %q", what, f["Size"])
	}
	if !isSHA256Hex(p.SHA256) {
		return LockedPackage{}, fmt.Errorf("%s: apt-cache shows bad SHA256 %q", what, p.SHA256)
	}
	return p, nil
}

// command runs a tool in the C locale and returns its standard output;
// its error carries the tool's own message.
func command(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(string(out)), nil
}
