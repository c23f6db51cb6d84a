// Package rootfs turns pinned packages into file trees: it reads lockfiles,
// fills and verifies the content-addressed cache, unpacks packages and holds
// the result as an in-memory Tree whose metadata never comes from the host.
package rootfs

import (
	"fmt"
	"path"
	"sort"
	"strings"
)

// Kind is the type of a tree entry.
type Kind uint8

const (
	Regular Kind = iota
	Dir
	Symlink
	CharDev
	BlockDev
)

func (k Kind) String() string {
	switch k {
	case Regular:
		return "file"
	case Dir:
		return "dir"
	case Symlink:
		return "symlink"
	case CharDev:
		return "chardev"
	case BlockDev:
		return "blockdev"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Entry is one file system object. Paths are slash-separated, relative to
// the tree's root and clean ("usr/bin/busybox", never "/usr/..." or "./...").
// Timestamps are deliberately absent: every writer stamps SOURCE_DATE_EPOCH.
type Entry struct {
	Path   string
	Kind   Kind
	Perm   uint32 // permission bits including setuid, setgid and sticky (07777)
	UID    uint32
	GID    uint32
	Data   []byte // Regular only
	Target string // Symlink only
	Major  uint32 // devices only
	Minor  uint32
}

// Tree is an in-memory directory tree. The zero value is not usable; call
// NewTree. Parent directories are created implicitly (0755, root:root) and
// an explicitly added directory overrides an implicit one's metadata.
type Tree struct {
	entries map[string]*Entry
}

// NewTree returns an empty tree.
func NewTree() *Tree {
	return &Tree{entries: map[string]*Entry{}}
}

// CleanPath normalises p to the tree's path form and reports whether it
// stays inside the tree. "/a/./b" and "a/b/" become "a/b"; "../x" is refused.
func CleanPath(p string) (string, bool) {
	c := path.Clean("/" + p)
	if c == "/" {
		return "", true
	}
	c = strings.TrimPrefix(c, "/")
	return c, !strings.HasPrefix(p, "../") && p != ".." && !strings.Contains("/"+p+"/", "/../")
}

// Add inserts or replaces e (its Path is cleaned first). Adding an entry
// below a non-directory is an error, as is replacing a directory that has
// children with something that is not a directory.
func (t *Tree) Add(e Entry) error {
	p, ok := CleanPath(e.Path)
	if !ok || p == "" {
		return fmt.Errorf("tree: invalid path %q", e.Path)
	}
	e.Path = p
	if err := t.ensureParents(p); err != nil {
		return err
	}
	if old, exists := t.entries[p]; exists && old.Kind == Dir && e.Kind != Dir && t.hasChildren(p) {
		return fmt.Errorf("tree: %s: cannot replace a non-empty directory with a %s", p, e.Kind)
	}
	if e.Kind != Regular {
		e.Data = nil
	}
	t.entries[p] = &e
	return nil
}

func (t *Tree) ensureParents(p string) error {
	dir := path.Dir(p)
	if dir == "." {
		return nil
	}
	if parent, ok := t.entries[dir]; ok {
		if parent.Kind != Dir {
			return fmt.Errorf("tree: %s: parent %s is a %s", p, dir, parent.Kind)
		}
		return nil
	}
	if err := t.ensureParents(dir); err != nil {
		return err
	}
	t.entries[dir] = &Entry{Path: dir, Kind: Dir, Perm: 0o755}
	return nil
}

func (t *Tree) hasChildren(dir string) bool {
	prefix := dir + "/"
	for p := range t.entries {
		if strings.HasPrefix(p, prefix) {
			return true
		}
	}
	return false
}

// AddFile adds a regular file owned by root.
func (t *Tree) AddFile(p string, perm uint32, data []byte) error {
	return t.Add(Entry{Path: p, Kind: Regular, Perm: perm, Data: data})
}

// AddDir adds a directory owned by root.
func (t *Tree) AddDir(p string, perm uint32) error {
	return t.Add(Entry{Path: p, Kind: Dir, Perm: perm})
}

// AddSymlink adds a symbolic link owned by root.
func (t *Tree) AddSymlink(p, target string) error {
	return t.Add(Entry{Path: p, Kind: Symlink, Perm: 0o777, Target: target})
}

// AddCharDev adds a character device node owned by root.
func (t *Tree) AddCharDev(p string, perm, major, minor uint32) error {
	return t.Add(Entry{Path: p, Kind: CharDev, Perm: perm, Major: major, Minor: minor})
}

// Get returns the entry at p.
func (t *Tree) Get(p string) (*Entry, bool) {
	c, ok := CleanPath(p)
	if !ok {
		return nil, false
	}
	e, ok := t.entries[c]
	return e, ok
}

// Remove deletes p and everything below it.
func (t *Tree) Remove(p string) {
	c, ok := CleanPath(p)
	if !ok || c == "" {
		return
	}
	delete(t.entries, c)
	prefix := c + "/"
	for q := range t.entries {
		if strings.HasPrefix(q, prefix) {
			delete(t.entries, q)
		}
	}
}

// Len returns the number of entries.
func (t *Tree) Len() int { return len(t.entries) }

// Paths returns every path in walk order: sorted, so a directory always
// precedes its contents.
func (t *Tree) Paths() []string {
	ps := make([]string, 0, len(t.entries))
	for p := range t.entries {
		ps = append(ps, p)
	}
	sort.Strings(ps)
	return ps
}

// Walk calls fn for every entry in Paths order. The entry must not be
// modified.
func (t *Tree) Walk(fn func(*Entry) error) error {
	for _, p := range t.Paths() {
		if err := fn(t.entries[p]); err != nil {
			return err
		}
	}
	return nil
}

// Merge copies every entry of other into t below prefix ("" for the root),
// replacing what is there.
func (t *Tree) Merge(other *Tree, prefix string) error {
	return other.Walk(func(e *Entry) error {
		c := *e
		c.Path = path.Join(prefix, e.Path)
		return t.Add(c)
	})
}

// Size returns the number of bytes held by regular files.
func (t *Tree) Size() int64 {
	var n int64
	for _, e := range t.entries {
		n += int64(len(e.Data))
	}
	return n
}
