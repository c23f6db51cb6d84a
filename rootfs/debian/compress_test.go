package debian

import (
	"bytes"
	"compress/gzip"
	"io"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/ulikunitz/xz"
)

func TestParseCompressed(t *testing.T) {
	const index = "Package: a1\nVersion: 1\nArchitecture: all\n\nPackage: b1\nVersion: 2\nArchitecture: amd64\n"
	for _, c := range []struct {
		name string
		w    func(io.Writer) (io.WriteCloser, error)
	}{
		{"x_Packages", nil},
		{"Packages.gz", func(w io.Writer) (io.WriteCloser, error) { return gzip.NewWriter(w), nil }},
		{"Packages.xz", func(w io.Writer) (io.WriteCloser, error) { return xz.NewWriter(w) }},
		{"deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages.lz4", func(w io.Writer) (io.WriteCloser, error) { return lz4.NewWriter(w), nil }},
		{"Packages.zst", func(w io.Writer) (io.WriteCloser, error) { return zstd.NewWriter(w) }},
	} {
		var b bytes.Buffer
		if c.w == nil {
			b.WriteString(index)
		} else {
			zw, err := c.w(&b)
			if err != nil {
				t.Fatal(err)
			}
			io.WriteString(zw, index)
			if err := zw.Close(); err != nil {
				t.Fatal(err)
			}
		}
		pkgs, err := parseCompressed(c.name, &b)
		if err != nil || len(pkgs) != 2 || pkgs[1].Name != "b1" {
			t.Errorf("parseCompressed(%s) = %+v, %v; want a1 and b1", c.name, pkgs, err)
		}
	}
	for _, c := range []struct{ name, data, want string }{
		{"Packages.bz2", "BZh", "unknown compression"},
		{"Packages.gz", "this is not a compressed file at all", "Packages.gz: gzip: invalid header"},
		{"Packages.xz", "this is not a compressed file at all", "Packages.xz: xz:"},
		{"Packages", "Package: a1\n", "Packages: packages: stanza at line 1"},
	} {
		if _, err := parseCompressed(c.name, strings.NewReader(c.data)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("parseCompressed(%s, %q) = %v; want %q", c.name, c.data, err, c.want)
		}
	}
}
