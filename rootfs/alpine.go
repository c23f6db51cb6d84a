package rootfs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"

	"yakimg/internal/atomicfile"
	"yakimg/rootfs/alpine"
)

// keys are the RSA keys Alpine packages and indexes must be signed with:
// the [alpine] keys directory, else Alpine's own keys shipped with yakimg.
func (a AlpineSource) keys() (alpine.Keyring, error) {
	if a.Keys != "" {
		return alpine.LoadKeys(a.Keys)
	}
	return alpine.DefaultKeys()
}

func (a AlpineSource) mirror() alpine.Mirror { return alpine.Mirror{URL: a.URL, Arch: a.Arch} }

// lockAlpine resolves the [alpine] packages to their closure in the
// mirror's signed index, then downloads and verifies each package (trusted
// signature over its control segment, datahash over its data) to pin the
// digests of the file and of both segments. Verified files go into cache.
func lockAlpine(ctx context.Context, a AlpineSource, cache Cache) ([]LockedPackage, error) {
	keys, err := a.keys()
	if err != nil {
		return nil, err
	}
	m := a.mirror()
	idx, err := m.Index(ctx, keys)
	if err != nil {
		return nil, err
	}
	closure, err := alpine.Resolve(idx, a.Arch, a.Packages)
	if err != nil {
		return nil, err
	}
	var pkgs []LockedPackage
	for _, p := range closure {
		b, v, err := m.Fetch(ctx, p, keys)
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(b)
		lp := LockedPackage{
			Name: p.Name, Version: p.Version, Arch: p.Arch, Filename: m.PackagePath(p),
			Size: int64(len(b)), SHA256: hex.EncodeToString(sum[:]), Source: "alpine",
			Checksum: v.Checksum, ControlSHA256: v.ControlSHA256, DataSHA256: v.DataSHA256,
		}
		if err := putBytes(cache, lp, b); err != nil {
			return nil, err
		}
		pkgs = append(pkgs, lp)
	}
	return pkgs, nil
}

// fetchAlpine downloads p into dir, verifies it against the index's
// identity, a trusted signature and its datahash, and checks that it is
// the very file the lock pins. It returns the file's path.
func fetchAlpine(ctx context.Context, a AlpineSource, dir string, p LockedPackage) (string, error) {
	if a.URL == "" {
		return "", fmt.Errorf("package %s: no [alpine] url in yakimg.toml to fetch it from", p)
	}
	keys, err := a.keys()
	if err != nil {
		return "", err
	}
	want := alpine.Package{Name: p.Name, Version: p.Version, Arch: p.Arch, Checksum: p.Checksum, Size: p.Size}
	b, v, err := a.mirror().Fetch(ctx, want, keys)
	if err != nil {
		return "", err
	}
	if v.ControlSHA256 != p.ControlSHA256 || v.DataSHA256 != p.DataSHA256 {
		return "", fmt.Errorf("package %s: mirror file has control sha256 %s and data sha256 %s, the lock pins %s and %s",
			p, v.ControlSHA256, v.DataSHA256, p.ControlSHA256, p.DataSHA256)
	}
	file := filepath.Join(dir, path.Base(p.Filename))
	if err := os.WriteFile(file, b, 0o600); err != nil {
		return "", fmt.Errorf("package %s: %w", p, err)
	}
	return file, nil
}

// alpineDataTar checks a cached .apk against the digests its lock entry
// pins for both segments and returns its uncompressed data archive.
func alpineDataTar(p LockedPackage, apk []byte) ([]byte, error) {
	v, err := alpine.VerifyDigests(apk, p.ControlSHA256, p.DataSHA256)
	if err != nil {
		return nil, err
	}
	r, err := v.DataTar()
	if err != nil {
		return nil, err
	}
	return io.ReadAll(r)
}

// putBytes stores b as p's file in the cache (through Put, which checks
// the digest once more).
func putBytes(c Cache, p LockedPackage, b []byte) error {
	if c.Dir == "" {
		return nil
	}
	tmp, err := os.MkdirTemp("", "yakimg-lock-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	file := filepath.Join(tmp, "pkg")
	if err := atomicfile.WriteFile(file, b); err != nil {
		return err
	}
	return c.Put(p, file)
}
