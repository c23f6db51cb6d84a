package diskimage

import (
	"fmt"
	"os"
	"path"

	"github.com/diskfs/go-diskfs/filesystem/ext4"

	"yakimg/rootfs"
)

// populate copies tree into fs. Timestamps are left to normaliseExt4, which
// stamps every inode afterwards.
func populate(fs *ext4.FileSystem, tree *rootfs.Tree) error {
	return tree.Walk(func(e *rootfs.Entry) error {
		if err := addEntry(fs, tree, e); err != nil {
			return fmt.Errorf("add %s %s: %w", e.Kind, e.Path, err)
		}
		return nil
	})
}

func addEntry(fs *ext4.FileSystem, tree *rootfs.Tree, e *rootfs.Entry) error {
	switch e.Kind {
	case rootfs.Dir:
		if err := fs.Mkdir(e.Path); err != nil {
			return err
		}
	case rootfs.Regular:
		f, err := fs.OpenFile(e.Path, os.O_CREATE|os.O_RDWR)
		if err != nil {
			return err
		}
		if len(e.Data) > 0 {
			if _, err := f.Write(e.Data); err != nil {
				return err
			}
		}
		if err := f.Close(); err != nil {
			return err
		}
	case rootfs.Symlink:
		return addSymlink(fs, tree, e)
	default:
		return fmt.Errorf("unsupported kind")
	}
	// A new inode inherits its parent's mode bits and owner; setting them
	// again costs a path walk each, a good part of the build time.
	parent, err := parentOf(tree, e.Path)
	if err != nil {
		return err
	}
	if e.Perm != parent.Perm {
		if err := fs.Chmod(e.Path, fileMode(e.Perm)); err != nil {
			return err
		}
	}
	if e.UID != parent.UID || e.GID != parent.GID {
		return fs.Chown(e.Path, int(e.UID), int(e.GID))
	}
	return nil
}

// rootDir is the root directory as go-diskfs creates it.
var rootDir = rootfs.Entry{Kind: rootfs.Dir, Perm: 0o755}

// parentOf returns the entry of p's parent directory.
func parentOf(tree *rootfs.Tree, p string) (*rootfs.Entry, error) {
	dir := path.Dir(p)
	if dir == "." {
		return &rootDir, nil
	}
	e, ok := tree.Get(dir)
	if !ok {
		return nil, fmt.Errorf("parent %s not in tree", dir)
	}
	return e, nil
}

// addSymlink creates a symlink owned by e.UID:e.GID. go-diskfs gives a new
// symlink its parent directory's owner, and its Chown follows symlinks, so
// the parent is lent the wanted owner for the moment of creation. A
// symlink's mode is always 0777.
func addSymlink(fs *ext4.FileSystem, tree *rootfs.Tree, e *rootfs.Entry) error {
	parent, err := parentOf(tree, e.Path)
	if err != nil {
		return err
	}
	if parent.UID == e.UID && parent.GID == e.GID {
		return fs.Symlink(e.Target, e.Path)
	}
	dir := path.Dir(e.Path)
	if err := fs.Chown(dir, int(e.UID), int(e.GID)); err != nil {
		return fmt.Errorf("lend owner to %s: %w", dir, err)
	}
	if err := fs.Symlink(e.Target, e.Path); err != nil {
		return err
	}
	if err := fs.Chown(dir, int(parent.UID), int(parent.GID)); err != nil {
		return fmt.Errorf("restore owner of %s: %w", dir, err)
	}
	return nil
}

// fileMode converts ext4/POSIX permission bits (07777) to an os.FileMode.
func fileMode(perm uint32) os.FileMode {
	m := os.FileMode(perm & 0o777)
	if perm&0o4000 != 0 {
		m |= os.ModeSetuid
	}
	if perm&0o2000 != 0 {
		m |= os.ModeSetgid
	}
	if perm&0o1000 != 0 {
		m |= os.ModeSticky
	}
	return m
}
