package alpine

import (
	"context"
	"fmt"

	"yakimg/internal/download"
)

// Mirror is one Alpine repository for one architecture. URL is the
// repository directory, such as ".../alpine/v3.20/main" (a directory,
// file:// or http(s):// URL), which holds <arch>/APKINDEX.tar.gz and
// <arch>/<name>-<version>.apk.
type Mirror struct {
	URL  string
	Arch string
}

// Size limits for what a mirror may send: the largest Alpine index
// (community) is a few MiB, and a package's size is known from the index.
const (
	maxIndexFile   = 64 << 20
	maxPackageFile = 2 << 30
)

// Index downloads, verifies and parses the mirror's APKINDEX.tar.gz.
func (m Mirror) Index(ctx context.Context, keys Keyring) ([]Package, error) {
	rel := m.Arch + "/APKINDEX.tar.gz"
	b, err := download.ReadAll(ctx, m.URL, rel, maxIndexFile)
	if err != nil {
		return nil, fmt.Errorf("alpine mirror %s: %w", m.URL, err)
	}
	pkgs, err := ReadIndex(b, keys)
	if err != nil {
		return nil, fmt.Errorf("alpine mirror %s: %s: %w", m.URL, rel, err)
	}
	return pkgs, nil
}

// PackagePath is p's file inside the mirror. Packages of every
// architecture the index lists, "noarch" ones included, live in the
// mirror's architecture directory.
func (m Mirror) PackagePath(p Package) string {
	return m.Arch + "/" + p.Name + "-" + p.Version + ".apk"
}

// Fetch downloads p, as listed in the mirror's index, and verifies it.
// The index's size bounds the download.
func (m Mirror) Fetch(ctx context.Context, p Package, keys Keyring) ([]byte, *Verified, error) {
	limit := int64(maxPackageFile)
	if p.Size > 0 {
		limit = p.Size
	}
	b, err := download.ReadAll(ctx, m.URL, m.PackagePath(p), limit)
	if err != nil {
		return nil, nil, fmt.Errorf("alpine mirror %s: %w", m.URL, err)
	}
	v, err := Verify(b, p, keys)
	if err != nil {
		return nil, nil, fmt.Errorf("alpine mirror %s: %w", m.URL, err)
	}
	return b, v, nil
}
