package builder

import (
	"bytes"
	"fmt"
	"strings"

	"yakimg/rootfs"
)

// excludedPaths are left out of every package, as Debian's own minimal
// images do with dpkg's path-exclude: documentation and translations are
// dead weight in a test image. (The copyright files are summarised in the
// archive's SBOM.)
var excludedPaths = []string{
	"usr/share/doc/", "usr/share/man/", "usr/share/info/", "usr/share/locale/",
	"usr/share/lintian/", "usr/share/bug/", "usr/share/doc-base/",
}

func keepPackagePath(p string) bool {
	for _, x := range excludedPaths {
		if strings.HasPrefix(p+"/", x) {
			return false
		}
	}
	return true
}

// isKernelPackage says whether p is the kernel, which the builder takes
// apart itself (vmlinuz to the artifacts, modules to the initramfs)
// instead of installing it in the root file system.
func isKernelPackage(p rootfs.LockedPackage) bool {
	return strings.HasPrefix(p.Name, "linux-image-")
}

// unpackPackages installs every locked package except the kernel into one
// tree, in lock order. Two packages may share directories but not other
// paths, unless they ship identical content there: a file owned twice
// would otherwise depend on the order of installation.
func unpackPackages(o Options) (*rootfs.Tree, int, error) {
	t := rootfs.NewTree()
	owner := map[string]string{}
	n := 0
	for _, p := range o.Lock.Packages {
		if isKernelPackage(p) {
			continue
		}
		archive, err := o.Cache.DataTar(p)
		if err != nil {
			return nil, 0, err
		}
		pt, err := rootfs.UnpackTar(p.String(), archive, keepPackagePath)
		if err != nil {
			return nil, 0, fmt.Errorf("unpack %s: %w", p, err)
		}
		err = pt.Walk(func(e *rootfs.Entry) error {
			if old, ok := t.Get(e.Path); ok && !(old.Kind == rootfs.Dir && e.Kind == rootfs.Dir) && !sameContent(old, e) {
				return fmt.Errorf("%s is shipped by both %s and %s with different content", e.Path, owner[e.Path], p)
			}
			owner[e.Path] = p.String()
			return t.Add(*e)
		})
		if err != nil {
			return nil, 0, fmt.Errorf("install %s: %w", p, err)
		}
		n++
	}
	return t, n, nil
}

func sameContent(a, b *rootfs.Entry) bool {
	return a.Kind == b.Kind && a.Perm == b.Perm && a.UID == b.UID && a.GID == b.GID &&
		a.Target == b.Target && a.Major == b.Major && a.Minor == b.Minor && bytes.Equal(a.Data, b.Data)
}
