package rootfs

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// DefaultCacheDir is where package files are kept unless the user says
// otherwise: $YAKIMG_CACHE, else $XDG_CACHE_HOME/yakimg, else
// $HOME/.cache/yakimg.
func DefaultCacheDir() string {
	if d := os.Getenv("YAKIMG_CACHE"); d != "" {
		return d
	}
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "yakimg")
	}
	return filepath.Join(os.Getenv("HOME"), ".cache", "yakimg")
}

// Cache is a content-addressed store of package files at Dir/sha256/<hex>.
// A file is only ever put there after its digest was checked, and read
// back only after it is checked again, so a corrupted cache is reported,
// never built from.
type Cache struct {
	Dir string
}

// Path is where the file with the given sha256 (hex) lives.
func (c Cache) Path(sha string) string {
	return filepath.Join(c.Dir, "sha256", sha)
}

// Has reports whether p's file is present with the locked size. It does
// not hash; Read does.
func (c Cache) Has(p LockedPackage) bool {
	fi, err := os.Stat(c.Path(p.SHA256))
	return err == nil && fi.Mode().IsRegular() && fi.Size() == p.Size
}

// Read returns p's file after verifying its sha256 against the lock.
func (c Cache) Read(p LockedPackage) ([]byte, error) {
	path := c.Path(p.SHA256)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("package %s: not in the cache (%s); run yakimg fetch", p, path)
	}
	if err != nil {
		return nil, fmt.Errorf("package %s: %w", p, err)
	}
	sum := sha256.Sum256(b)
	if got := hex.EncodeToString(sum[:]); got != p.SHA256 {
		return nil, fmt.Errorf("package %s: cache file %s has sha256 %s, lock wants %s; delete it and run yakimg fetch", p, path, got, p.SHA256)
	}
	return b, nil
}

// Put copies the file src into the cache as p's file. The copy is hashed
// as it is written and only renamed into place when its digest is the
// locked one, so a mismatch leaves nothing in the cache.
func (c Cache) Put(p LockedPackage, src string) error {
	if !isSHA256Hex(p.SHA256) {
		return fmt.Errorf("package %s: sha256 %q is not 64 lowercase hex digits", p, p.SHA256)
	}
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("package %s: %w", p, err)
	}
	defer in.Close()
	dst := c.Path(p.SHA256)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("package %s: %w", p, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".put-*")
	if err != nil {
		return fmt.Errorf("package %s: %w", p, err)
	}
	defer os.Remove(tmp.Name()) // no-op once renamed
	h := sha256.New()
	_, err = io.Copy(io.MultiWriter(tmp, h), in)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("package %s: copy %s into the cache: %w", p, src, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != p.SHA256 {
		return fmt.Errorf("package %s: %s has sha256 %s, lock wants %s; refused", p, src, got, p.SHA256)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("package %s: %w", p, err)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return fmt.Errorf("package %s: %w", p, err)
	}
	return nil
}

// fileSHA256 hashes a file without holding it in memory.
func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
