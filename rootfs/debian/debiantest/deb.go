// Package debiantest builds real Debian packages and archives for tests:
// .deb files that dpkg-deb accepts, and a mirror (pool/, Packages
// indexes, Release, optionally signed) that apt and debian.Mirror read.
// The .deb bytes depend only on the Deb value, so tests may pin digests.
package debiantest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ulikunitz/xz"
)

// File is one entry of a package's data.tar. Parent directories are
// added as needed.
type File struct {
	// Path is slash-separated and relative: "usr/bin/hello".
	Path string
	// Mode holds the type (none for a regular file, fs.ModeDir or
	// fs.ModeSymlink), the permissions and fs.ModeSetuid, ModeSetgid and
	// ModeSticky; zero permissions mean 0644 for a file, 0755 for a
	// directory, 0777 for a symlink.
	Mode fs.FileMode
	// Data is a regular file's content.
	Data []byte
	// Link is a symlink's target.
	Link string
}

// Deb describes a binary package. Arch is required by BuildDeb and
// defaults to the mirror's in WriteMirror. Relation fields use Debian
// syntax ("libc6 (>= 2.36), foo | bar") and may be empty.
type Deb struct {
	Name, Version, Arch           string
	Depends, PreDepends, Provides string
	MultiArch                     string
	Files                         []File
	// Compression of control.tar and data.tar: "gz" (the default), "xz"
	// or "none".
	Compression string
}

// mtime stamps every entry of every archive: bookworm's release day.
var mtime = time.Unix(1686355200, 0)

// BuildDeb returns the .deb for d: an ar archive of debian-binary,
// control.tar and data.tar, as dpkg-deb lays it out, owned by root with
// fixed timestamps.
func BuildDeb(tb testing.TB, d Deb) []byte {
	tb.Helper()
	b, err := buildDeb(d)
	if err != nil {
		tb.Fatalf("BuildDeb(%s %s): %v", d.Name, d.Version, err)
	}
	return b
}

func buildDeb(d Deb) ([]byte, error) {
	if d.Name == "" || d.Version == "" || d.Arch == "" {
		return nil, fmt.Errorf("need Name, Version and Arch")
	}
	data, err := dataTar(d.Files)
	if err != nil {
		return nil, err
	}
	control, err := tarball([]entry{
		{hdr: tar.Header{Name: "./", Typeflag: tar.TypeDir, Mode: 0o755}},
		{hdr: tar.Header{Name: "./control", Typeflag: tar.TypeReg, Mode: 0o644},
			data: []byte(controlStanza(d, installedKiB(d)))},
	})
	if err != nil {
		return nil, err
	}
	var ext string
	switch d.Compression {
	case "", "gz":
		ext = ".gz"
		control, data = gz(control), gz(data)
	case "xz":
		ext = ".xz"
		if control, err = xzip(control); err == nil {
			data, err = xzip(data)
		}
	case "none":
	default:
		return nil, fmt.Errorf("compression %q: want gz, xz or none", d.Compression)
	}
	if err != nil {
		return nil, err
	}
	var ar bytes.Buffer
	ar.WriteString("!<arch>\n")
	for _, m := range []struct {
		name string
		data []byte
	}{{"debian-binary", []byte("2.0\n")}, {"control.tar" + ext, control}, {"data.tar" + ext, data}} {
		// The header dpkg-deb writes: name, mtime, uid, gid, mode, size.
		fmt.Fprintf(&ar, "%-16s%-12d%-6d%-6d%-8s%-10d`\n", m.name, mtime.Unix(), 0, 0, "100644", len(m.data))
		ar.Write(m.data)
		if len(m.data)%2 == 1 {
			ar.WriteByte('\n')
		}
	}
	return ar.Bytes(), nil
}

// controlStanza is the control file, which is also the package's
// Packages stanza before Filename, Size and SHA256.
func controlStanza(d Deb, installedKiB int64) string {
	var b strings.Builder
	field := func(k, v string) {
		if v != "" {
			fmt.Fprintf(&b, "%s: %s\n", k, v)
		}
	}
	field("Package", d.Name)
	field("Version", d.Version)
	field("Architecture", d.Arch)
	field("Maintainer", "yakimg tests <tests@yakimg.invalid>")
	field("Installed-Size", fmt.Sprint(installedKiB))
	field("Multi-Arch", d.MultiArch)
	field("Pre-Depends", d.PreDepends)
	field("Depends", d.Depends)
	field("Provides", d.Provides)
	field("Description", "test package "+d.Name)
	return b.String()
}

type entry struct {
	hdr  tar.Header
	data []byte
}

// dataTar returns data.tar for files, with every parent directory, in
// path order (parents first).
func dataTar(files []File) ([]byte, error) {
	type node struct {
		entry
		implied bool // a parent directory no File named
	}
	byPath := map[string]node{}
	for _, f := range files {
		p := path.Clean(f.Path)
		if f.Path == "" || path.IsAbs(p) || p == "." || strings.HasPrefix(p, "../") || p != f.Path {
			return nil, fmt.Errorf("file path %q is not a clean relative path", f.Path)
		}
		if old, ok := byPath[p]; ok && !(old.implied && f.Mode.IsDir()) {
			return nil, fmt.Errorf("file %s given twice, or also as a parent directory", p)
		}
		e := entry{hdr: tar.Header{Name: "./" + p, Mode: int64(f.Mode.Perm())}}
		for bit, m := range map[fs.FileMode]int64{fs.ModeSetuid: 0o4000, fs.ModeSetgid: 0o2000, fs.ModeSticky: 0o1000} {
			if f.Mode&bit != 0 {
				e.hdr.Mode |= m
			}
		}
		switch f.Mode.Type() {
		case 0:
			e.hdr.Typeflag, e.data = tar.TypeReg, f.Data
		case fs.ModeDir:
			e.hdr.Typeflag, e.hdr.Name = tar.TypeDir, e.hdr.Name+"/"
		case fs.ModeSymlink:
			e.hdr.Typeflag, e.hdr.Linkname = tar.TypeSymlink, f.Link
		default:
			return nil, fmt.Errorf("file %s: unsupported type %v", p, f.Mode.Type())
		}
		if e.hdr.Mode&0o777 == 0 {
			e.hdr.Mode |= map[byte]int64{tar.TypeReg: 0o644, tar.TypeDir: 0o755, tar.TypeSymlink: 0o777}[e.hdr.Typeflag]
		}
		byPath[p] = node{entry: e}
		for dir := path.Dir(p); dir != "."; dir = path.Dir(dir) {
			old, ok := byPath[dir]
			if !ok {
				byPath[dir] = node{entry{hdr: tar.Header{Name: "./" + dir + "/", Typeflag: tar.TypeDir, Mode: 0o755}}, true}
			} else if old.hdr.Typeflag != tar.TypeDir {
				return nil, fmt.Errorf("file %s: parent %s is not a directory", p, dir)
			}
		}
	}
	paths := make([]string, 0, len(byPath))
	for p := range byPath {
		paths = append(paths, p)
	}
	// A parent is a prefix of its children, so it sorts before them.
	slices.Sort(paths)
	entries := []entry{{hdr: tar.Header{Name: "./", Typeflag: tar.TypeDir, Mode: 0o755}}}
	for _, p := range paths {
		entries = append(entries, byPath[p].entry)
	}
	return tarball(entries)
}

// installedKiB is the Installed-Size field: the file contents in KiB.
func installedKiB(d Deb) int64 {
	var n int64
	for _, f := range d.Files {
		n += int64(len(f.Data))
	}
	return (n + 1023) / 1024
}

// tarball writes entries as a GNU tar owned by root:root, as dpkg-deb does.
func tarball(entries []entry) ([]byte, error) {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range entries {
		h := e.hdr
		h.Uname, h.Gname, h.ModTime, h.Format = "root", "root", mtime, tar.FormatGNU
		h.Size = int64(len(e.data))
		if err := tw.WriteHeader(&h); err != nil {
			return nil, fmt.Errorf("tar %s: %w", h.Name, err)
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, fmt.Errorf("tar %s: %w", h.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// gz compresses b with no name and no timestamp in the header.
func gz(b []byte) []byte {
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	zw.Write(b) // a bytes.Buffer does not fail
	zw.Close()
	return out.Bytes()
}

func xzip(b []byte) ([]byte, error) {
	var out bytes.Buffer
	zw, err := xz.NewWriter(&out)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(b); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}
