package rootfs

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"yakimg/internal/atomicfile"
)

// DataTar returns the file system contents of p's package as an
// uncompressed tar archive (UnpackTar reads it).
//
// Decompressing a package is the slow part of a build (5 s for the kernel's
// xz data), and the result never changes for a given package file, so it
// is kept in the cache at unpacked/<package sha256>.<tar sha256>.tar. A
// kept archive is used only when its content still hashes to the digest in
// its name; anything else is produced again from the verified package
// file. Failing to store it only costs time on the next build, so that
// error is not reported.
func (c Cache) DataTar(p LockedPackage) ([]byte, error) {
	if b, ok := c.keptTar(p); ok {
		return b, nil
	}
	file, err := c.Read(p)
	if err != nil {
		return nil, err
	}
	var archive []byte
	switch p.Source {
	case "debian":
		archive, err = DebDataTar(file)
	case "alpine":
		archive, err = alpineDataTar(p, file)
	default:
		return nil, fmt.Errorf("package %s: unknown source %q", p, p.Source)
	}
	if err != nil {
		return nil, fmt.Errorf("package %s: %w", p, err)
	}
	sum := sha256.Sum256(archive)
	kept := c.tarPath(p.SHA256, hex.EncodeToString(sum[:]))
	if os.MkdirAll(filepath.Dir(kept), 0o755) == nil {
		_ = atomicfile.WriteFile(kept, archive)
	}
	return archive, nil
}

func (c Cache) tarPath(pkgSHA, tarSHA string) string {
	return filepath.Join(c.Dir, "unpacked", pkgSHA+"."+tarSHA+".tar")
}

// keptTar finds and checks the kept archive of p. A damaged one is removed
// so that it is replaced.
func (c Cache) keptTar(p LockedPackage) ([]byte, bool) {
	matches, _ := filepath.Glob(c.tarPath(p.SHA256, "*"))
	for _, m := range matches {
		want := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(m), p.SHA256+"."), ".tar")
		b, err := os.ReadFile(m)
		if err == nil {
			sum := sha256.Sum256(b)
			if hex.EncodeToString(sum[:]) == want {
				return b, true
			}
		}
		os.Remove(m)
	}
	return nil, false
}
