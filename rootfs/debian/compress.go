package debian

import (
	"compress/gzip"
	"fmt"
	"io"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/ulikunitz/xz"
)

// decompress returns the uncompressed content of r, an index file named
// name: "…Packages" is plain, "…Packages.gz" and ".xz" come from mirrors,
// ".lz4" and ".zst" from what apt keeps in /var/lib/apt/lists with
// Acquire::GzipIndexes. Host list names contain dots ("deb.debian.org_…"),
// so suffixes are matched rather than path.Ext. The caller closes the
// result; that does not close r.
func decompress(name string, r io.Reader) (io.ReadCloser, error) {
	var (
		zr  io.ReadCloser
		err error
	)
	switch {
	case strings.HasSuffix(name, "Packages"):
		return io.NopCloser(r), nil
	case strings.HasSuffix(name, ".gz"):
		zr, err = gzip.NewReader(r)
	case strings.HasSuffix(name, ".xz"):
		var x *xz.Reader
		x, err = xz.NewReader(r)
		zr = io.NopCloser(x)
	case strings.HasSuffix(name, ".lz4"):
		zr = io.NopCloser(lz4.NewReader(r))
	case strings.HasSuffix(name, ".zst"):
		// One goroutine is plenty for an index, and Close leaves none.
		var d *zstd.Decoder
		if d, err = zstd.NewReader(r, zstd.WithDecoderConcurrency(1)); err == nil {
			zr = d.IOReadCloser()
		}
	default:
		return nil, fmt.Errorf("%s: unknown compression (want a name ending in Packages, .gz, .xz, .lz4 or .zst)", name)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return zr, nil
}

// parseCompressed parses the Packages index r, compressed as name says.
func parseCompressed(name string, r io.Reader) ([]Package, error) {
	zr, err := decompress(name, r)
	if err != nil {
		return nil, err
	}
	defer zr.Close()
	pkgs, err := ParsePackages(zr)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return pkgs, nil
}
