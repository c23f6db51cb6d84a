package rootfs

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// arMember is one member of an ar archive; data aliases the archive bytes.
type arMember struct {
	name string
	data []byte
}

// readAr splits a System V/GNU ar archive (the container of a .deb) into
// its members. The format is a global header followed by 60-byte member
// headers, each member's data padded to an even offset.
func readAr(b []byte) ([]arMember, error) {
	const magic = "!<arch>\n"
	if !bytes.HasPrefix(b, []byte(magic)) {
		return nil, errors.New("not an ar archive (missing \"!<arch>\" header)")
	}
	var members []arMember
	off := len(magic)
	for off < len(b) {
		if len(b)-off < 60 {
			return nil, fmt.Errorf("ar: truncated member header at offset %d", off)
		}
		h := b[off : off+60]
		if string(h[58:60]) != "`\n" {
			return nil, fmt.Errorf("ar: bad member header magic at offset %d", off)
		}
		// GNU ar terminates names with "/"; both spellings appear in .debs.
		name := strings.TrimSuffix(strings.TrimRight(string(h[0:16]), " "), "/")
		size, err := strconv.ParseInt(strings.TrimRight(string(h[48:58]), " "), 10, 64)
		if err != nil || size < 0 {
			return nil, fmt.Errorf("ar: member %q: bad size %q", name, h[48:58])
		}
		off += 60
		if size > int64(len(b)-off) {
			return nil, fmt.Errorf("ar: member %q: truncated (%d bytes declared, %d present)", name, size, len(b)-off)
		}
		members = append(members, arMember{name: name, data: b[off : off+int(size)]})
		off += int(size) + int(size%2)
	}
	return members, nil
}

// debMember returns the member whose name is prefix+".tar" with any
// supported compression suffix, after checking the package format version.
func debMember(deb []byte, prefix string) (arMember, error) {
	members, err := readAr(deb)
	if err != nil {
		return arMember{}, fmt.Errorf("deb: %w", err)
	}
	if len(members) == 0 || members[0].name != "debian-binary" {
		return arMember{}, errors.New("deb: first member is not debian-binary")
	}
	if v := strings.TrimSpace(string(members[0].data)); !strings.HasPrefix(v, "2.") {
		return arMember{}, fmt.Errorf("deb: debian-binary: unsupported package format %q (want 2.x)", v)
	}
	for _, m := range members[1:] {
		if strings.HasPrefix(m.name, prefix+".tar") {
			return m, nil
		}
	}
	return arMember{}, fmt.Errorf("deb: no %s.tar member", prefix)
}

// decompress returns the uncompressed tar stream of a .deb member, chosen
// by its name's suffix.
func decompress(m arMember) (io.ReadCloser, error) {
	r := bytes.NewReader(m.data)
	switch {
	case strings.HasSuffix(m.name, ".tar"):
		return io.NopCloser(r), nil
	case strings.HasSuffix(m.name, ".tar.gz"):
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", m.name, err)
		}
		return zr, nil
	case strings.HasSuffix(m.name, ".tar.xz"):
		xr, err := xz.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", m.name, err)
		}
		return io.NopCloser(xr), nil
	case strings.HasSuffix(m.name, ".tar.zst"):
		zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", m.name, err)
		}
		return zr.IOReadCloser(), nil
	}
	return nil, fmt.Errorf("%s: unsupported compression", m.name)
}

// tarSource opens a fresh tar stream each time it is called, so the
// unpacker can take a second pass; name is what errors call the archive.
type tarSource struct {
	name string
	open func() (io.ReadCloser, error)
}

func memberSource(m arMember) tarSource {
	return tarSource{m.name, func() (io.ReadCloser, error) { return decompress(m) }}
}

// walk calls fn for every tar entry; fn may read the entry's data from the
// reader.
func (s tarSource) walk(fn func(h *tar.Header, r io.Reader) error) error {
	rc, err := s.open()
	if err != nil {
		return err
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		if err := fn(h, tr); err != nil {
			return fmt.Errorf("%s: entry %q: %w", s.name, h.Name, err)
		}
	}
}

// entryPath turns a tar name ("./usr/bin/x") into a tree path; "" is the
// package root. Names with ".." are refused even when they would stay
// inside, because no honest package needs them.
func entryPath(name string) (string, error) {
	p, ok := CleanPath(name)
	if !ok {
		return "", errors.New("path contains \"..\"")
	}
	return p, nil
}

// UnpackDeb reads a .deb's data archive into a Tree. keep (may be nil =
// all) is called with the cleaned relative path of every entry
// ("boot/vmlinuz-6.1.0-50-cloud-amd64", "lib/modules/.../virtio_blk.ko")
// and decides whether it goes in; parent directories of kept entries are
// added anyway, with the metadata the package gives them.
//
// Metadata comes from the package, never the host: mode, uid and gid are
// the tar header's, mtimes are dropped, hard links become copies of their
// target's data and device nodes stay device nodes.
func UnpackDeb(deb []byte, keep func(path string) bool) (*Tree, error) {
	m, err := debMember(deb, "data")
	if err != nil {
		return nil, err
	}
	t, err := unpack(memberSource(m), keep)
	if err != nil {
		return nil, fmt.Errorf("deb: %w", err)
	}
	return t, nil
}

// DebDataTar returns the uncompressed data archive of a .deb: what
// UnpackTar takes. Caching it saves the decompression (seconds for a
// kernel package) on every later build.
func DebDataTar(deb []byte) ([]byte, error) {
	m, err := debMember(deb, "data")
	if err != nil {
		return nil, err
	}
	rc, err := decompress(m)
	if err != nil {
		return nil, fmt.Errorf("deb: %w", err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return nil, fmt.Errorf("deb: %s: %w", m.name, err)
	}
	return b, nil
}

// UnpackTar reads an uncompressed tar archive into a Tree, with the same
// rules and keep filter as UnpackDeb. name says what the archive is in
// errors ("busybox-static 1:1.35.0-4 data.tar").
func UnpackTar(name string, archive []byte, keep func(path string) bool) (*Tree, error) {
	return unpack(tarSource{name, func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(archive)), nil
	}}, keep)
}

func unpack(src tarSource, keep func(path string) bool) (*Tree, error) {
	if keep == nil {
		keep = func(string) bool { return true }
	}
	t := NewTree()
	// origin maps every regular file and hard link to the regular entry
	// holding its data, so links to links and links to skipped files resolve.
	origin := map[string]string{}
	var pending []hardLink // kept links whose data lives in a skipped file
	var dirs []Entry       // every directory, to restore parents of kept entries
	err := src.walk(func(h *tar.Header, r io.Reader) error {
		p, err := entryPath(h.Name)
		if err != nil || p == "" {
			return err
		}
		e := Entry{Path: p, Perm: uint32(h.Mode) & 0o7777, UID: uint32(h.Uid), GID: uint32(h.Gid)}
		switch h.Typeflag {
		case tar.TypeReg:
			origin[p] = p
			if !keep(p) {
				return nil
			}
			e.Kind = Regular
			if e.Data, err = io.ReadAll(r); err != nil {
				return err
			}
		case tar.TypeLink:
			lp, err := entryPath(h.Linkname)
			if err != nil {
				return fmt.Errorf("hard link target %q: %w", h.Linkname, err)
			}
			o, ok := origin[lp]
			if !ok {
				return fmt.Errorf("hard link target %q is not an earlier file in the archive", h.Linkname)
			}
			origin[p] = o
			if !keep(p) {
				return nil
			}
			e.Kind = Regular
			src, ok := t.Get(o)
			if !ok {
				pending = append(pending, hardLink{e, o})
				return nil
			}
			e.Data = src.Data
		case tar.TypeDir:
			e.Kind = Dir
			dirs = append(dirs, e)
			if !keep(p) {
				return nil
			}
		case tar.TypeSymlink:
			if !keep(p) {
				return nil
			}
			e.Kind, e.Target = Symlink, h.Linkname
		case tar.TypeChar, tar.TypeBlock:
			if !keep(p) {
				return nil
			}
			e.Kind = CharDev
			if h.Typeflag == tar.TypeBlock {
				e.Kind = BlockDev
			}
			e.Major, e.Minor = uint32(h.Devmajor), uint32(h.Devminor)
		default:
			return fmt.Errorf("unsupported tar entry type %q", h.Typeflag)
		}
		return t.Add(e)
	})
	if err != nil {
		return nil, err
	}
	if len(pending) > 0 {
		if err := addPendingLinks(t, src, pending); err != nil {
			return nil, err
		}
	}
	for _, d := range dirs {
		if e, ok := t.Get(d.Path); ok && e.Kind == Dir {
			if err := t.Add(d); err != nil {
				return nil, fmt.Errorf("%s: entry %q: %w", src.name, d.Path, err)
			}
		}
	}
	return t, nil
}

// hardLink is a kept hard link waiting for the data of its origin file.
type hardLink struct {
	e      Entry
	origin string
}

// addPendingLinks reads the data archive a second time to fetch the data
// of files that were skipped but are the targets of kept hard links. It
// is rare enough that a second decompression beats holding every skipped
// file's data in memory.
func addPendingLinks(t *Tree, src tarSource, pending []hardLink) error {
	want := map[string][]byte{}
	for _, l := range pending {
		want[l.origin] = nil
	}
	err := src.walk(func(h *tar.Header, r io.Reader) error {
		p, err := entryPath(h.Name)
		if err != nil || h.Typeflag != tar.TypeReg {
			return err
		}
		if _, ok := want[p]; !ok {
			return nil
		}
		want[p], err = io.ReadAll(r)
		return err
	})
	if err != nil {
		return err
	}
	for _, l := range pending {
		l.e.Data = want[l.origin]
		if err := t.Add(l.e); err != nil {
			return fmt.Errorf("%s: entry %q: %w", src.name, l.e.Path, err)
		}
	}
	return nil
}

// DebControl returns the fields of a .deb's control file (Package,
// Version, Architecture, Depends...). Continuation lines of multi-line
// fields are joined with "\n".
func DebControl(deb []byte) (map[string]string, error) {
	m, err := debMember(deb, "control")
	if err != nil {
		return nil, err
	}
	var control []byte
	err = memberSource(m).walk(func(h *tar.Header, r io.Reader) error {
		if p, err := entryPath(h.Name); err != nil || p != "control" {
			return err
		}
		control, err = io.ReadAll(r)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("deb: %w", err)
	}
	if control == nil {
		return nil, fmt.Errorf("deb: %s: no control file", m.name)
	}
	fields, err := parseStanza(string(control))
	if err != nil {
		return nil, fmt.Errorf("deb: %s: control: %w", m.name, err)
	}
	return fields, nil
}

// parseStanza parses one paragraph of Debian control syntax ("Field:
// value" lines; lines starting with a space or tab continue the previous
// field).
func parseStanza(s string) (map[string]string, error) {
	fields := map[string]string{}
	last := ""
	for i, line := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		if line == "" {
			return nil, fmt.Errorf("line %d: blank line inside a paragraph", i+1)
		}
		if line[0] == ' ' || line[0] == '\t' {
			if last == "" {
				return nil, fmt.Errorf("line %d: continuation line before any field", i+1)
			}
			fields[last] += "\n" + line[1:]
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok || k == "" {
			return nil, fmt.Errorf("line %d: %q is not a \"Field: value\" line", i+1, line)
		}
		last = k
		fields[k] = strings.TrimSpace(v)
	}
	return fields, nil
}
