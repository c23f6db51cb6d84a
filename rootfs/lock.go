package rootfs

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"sort"
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
	Source   string `json:"source"` // "debian" or "alpine"
	// Alpine packages only: the index's identity of the package ("Q1" +
	// base64 SHA-1 of its control segment) and the sha256 of its compressed
	// control and data segments, the parts its signature and datahash cover.
	Checksum      string `json:"checksum,omitempty"`
	ControlSHA256 string `json:"control_sha256,omitempty"`
	DataSHA256    string `json:"data_sha256,omitempty"`
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
		switch p.Source {
		case "debian":
		case "alpine":
			if !strings.HasPrefix(p.Checksum, "Q1") || !isSHA256Hex(p.ControlSHA256) || !isSHA256Hex(p.DataSHA256) {
				return fmt.Errorf("package %s: an alpine package needs checksum (Q1...), control_sha256 and data_sha256", p)
			}
		default:
			return fmt.Errorf("package %s: unknown source %q (want debian or alpine)", p, p.Source)
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

// sort puts the packages in their canonical order: by name, then arch.
func (l *Lock) sort() {
	sort.Slice(l.Packages, func(i, j int) bool {
		a, b := l.Packages[i], l.Packages[j]
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		return a.Arch < b.Arch
	})
}

// canonical is the one byte encoding of l: 2-space indented JSON, packages
// sorted by name then arch, trailing newline. l itself is not reordered.
func (l *Lock) canonical() []byte {
	c := Lock{Format: l.Format, Packages: append([]LockedPackage{}, l.Packages...)}
	c.sort()
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
