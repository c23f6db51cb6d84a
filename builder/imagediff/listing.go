// Package imagediff explains how two built images differ: artifact by
// artifact (from the digests in manifest.json), and for an initramfs or a
// disk partition that differs, file by file. It reads the artifacts with
// the same libraries that write them (u-root's cpio, klauspost's zstd,
// go-diskfs's ext4), so no host tool, mount or privilege is needed.
package imagediff

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/ext4"
	"github.com/klauspost/compress/zstd"
	"github.com/u-root/u-root/pkg/cpio"

	"yakimg/builder"
	"yakimg/builder/diskimage"
)

// ErrNotImage marks a directory that is missing or holds no readable
// manifest.json: a usage error rather than a difference.
var ErrNotImage = errors.New("not an image directory")

// Entry is one file system object of an artifact. Timestamps and inode
// numbers are left out on purpose: the builder normalises them, so they
// explain nothing about a difference.
type Entry struct {
	Path   string `json:"path"`
	Type   string `json:"type"` // file, dir, symlink, chardev, blockdev, fifo, socket
	Size   int64  `json:"size"` // content bytes (files), target length (symlinks)
	Mode   uint32 `json:"mode"` // permission bits including setuid, setgid, sticky
	UID    uint32 `json:"uid"`
	GID    uint32 `json:"gid"`
	SHA256 string `json:"sha256,omitempty"` // content digest, files only
	Target string `json:"target,omitempty"` // symlinks only
	Device string `json:"device,omitempty"` // "major:minor", devices only
}

// Listing is an artifact's entries sorted by path.
type Listing []Entry

// PartitionArtifact names a disk partition as an artifact: "disk.img:yakimg-root".
func PartitionArtifact(gptName string) string {
	return builder.DiskFile + ":" + gptName
}

// Tree lists every walkable artifact of the image in dir: the initramfs
// under its file name and each disk partition under PartitionArtifact.
func Tree(dir string) (map[string]Listing, error) {
	m, err := ReadManifest(dir)
	if err != nil {
		return nil, err
	}
	out := map[string]Listing{}
	l, err := ListInitramfs(filepath.Join(dir, builder.InitramfsFile))
	if err != nil {
		return nil, err
	}
	out[builder.InitramfsFile] = l
	for _, p := range partitions(m) {
		l, err := ListPartition(filepath.Join(dir, builder.DiskFile), p)
		if err != nil {
			return nil, err
		}
		out[PartitionArtifact(p.Name)] = l
	}
	return out, nil
}

// ReadManifest reads dir/manifest.json; a missing directory or manifest
// is reported as ErrNotImage.
func ReadManifest(dir string) (*builder.Manifest, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %w", dir, ErrNotImage, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("%s: %w: not a directory", dir, ErrNotImage)
	}
	p := filepath.Join(dir, builder.ManifestFile)
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %w", dir, ErrNotImage, err)
	}
	var m builder.Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%s: %w: parse: %w", p, ErrNotImage, err)
	}
	if m.Format != builder.ManifestFormat {
		return nil, fmt.Errorf("%s: %w: manifest format %d, want %d", p, ErrNotImage, m.Format, builder.ManifestFormat)
	}
	return &m, nil
}

func partitions(m *builder.Manifest) []diskimage.PartitionLayout {
	if m.Disk == nil {
		return nil
	}
	return m.Disk.Partitions
}

// ListInitramfs lists a zstd-compressed newc cpio archive.
func ListInitramfs(p string) (Listing, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	dec, err := zstd.NewReader(f)
	if err != nil {
		return nil, fmt.Errorf("%s: zstd: %w", p, err)
	}
	defer dec.Close()
	// The cpio reader needs random access; an initramfs fits in memory.
	raw, err := io.ReadAll(dec)
	if err != nil {
		return nil, fmt.Errorf("%s: zstd: %w", p, err)
	}
	var l Listing
	err = cpio.ForEachRecord(cpio.Newc.Reader(bytes.NewReader(raw)), func(r cpio.Record) error {
		e, ok, err := cpioEntry(r)
		if err != nil {
			return fmt.Errorf("%s: %w", r.Name, err)
		}
		if ok {
			l = append(l, e)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s: cpio: %w", p, err)
	}
	sortListing(l)
	return l, nil
}

func cpioEntry(r cpio.Record) (Entry, bool, error) {
	name := strings.TrimPrefix(path.Clean("/"+r.Name), "/")
	if name == "" {
		return Entry{}, false, nil // the archive's "." entry
	}
	e := Entry{Path: name, Mode: uint32(r.Mode & 0o7777), UID: uint32(r.UID), GID: uint32(r.GID)}
	content := func() ([]byte, error) {
		return io.ReadAll(io.NewSectionReader(r.ReaderAt, 0, int64(r.FileSize)))
	}
	switch r.Mode & cpio.S_IFMT {
	case cpio.S_IFREG:
		data, err := content()
		if err != nil {
			return e, false, err
		}
		e.Type, e.Size, e.SHA256 = "file", int64(len(data)), digest(data)
	case cpio.S_IFDIR:
		e.Type = "dir"
	case cpio.S_IFLNK:
		data, err := content()
		if err != nil {
			return e, false, err
		}
		e.Type, e.Size, e.Target = "symlink", int64(len(data)), string(data)
	case cpio.S_IFCHR:
		e.Type, e.Device = "chardev", fmt.Sprintf("%d:%d", r.Rmajor, r.Rminor)
	case cpio.S_IFBLK:
		e.Type, e.Device = "blockdev", fmt.Sprintf("%d:%d", r.Rmajor, r.Rminor)
	case cpio.S_IFIFO:
		e.Type = "fifo"
	case cpio.S_IFSOCK:
		e.Type = "socket"
	default:
		return e, false, fmt.Errorf("unknown file type %#o", r.Mode&cpio.S_IFMT)
	}
	return e, true, nil
}

// ListPartition lists the ext4 file system of one partition of the disk
// image at p.
func ListPartition(p string, part diskimage.PartitionLayout) (Listing, error) {
	b, err := file.OpenFromPath(p, true)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	fs, err := ext4.Read(b, part.SizeBytes, part.StartBytes, 512)
	if err != nil {
		return nil, fmt.Errorf("%s partition %s: read ext4: %w", p, part.Name, err)
	}
	var l Listing
	if err := walkExt4(fs, ".", &l); err != nil {
		return nil, fmt.Errorf("%s partition %s: %w", p, part.Name, err)
	}
	sortListing(l)
	return l, nil
}

func walkExt4(fs *ext4.FileSystem, dir string, l *Listing) error {
	des, err := fs.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, de := range des {
		p := path.Join(dir, de.Name())
		// DirEntry.Info carries only the type bits in go-diskfs v1.9.4;
		// Stat has the permissions as well.
		fi, err := fs.Stat(p)
		if err != nil {
			return fmt.Errorf("stat %s: %w", p, err)
		}
		e, err := ext4Entry(fs, p, fi)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		*l = append(*l, e)
		if e.Type == "dir" {
			if err := walkExt4(fs, p, l); err != nil {
				return err
			}
		}
	}
	return nil
}

func ext4Entry(fs *ext4.FileSystem, p string, fi iofs.FileInfo) (Entry, error) {
	st, ok := fi.Sys().(*ext4.StatT)
	if !ok {
		return Entry{}, fmt.Errorf("no ext4 metadata")
	}
	m := fi.Mode()
	e := Entry{Path: p, Mode: unixPerm(m), UID: st.UID, GID: st.GID}
	switch {
	case m.IsRegular():
		f, err := fs.Open(p)
		if err != nil {
			return e, err
		}
		defer f.Close()
		h := sha256.New()
		n, err := io.Copy(h, f)
		if err != nil {
			return e, fmt.Errorf("read: %w", err)
		}
		e.Type, e.Size, e.SHA256 = "file", n, hex.EncodeToString(h.Sum(nil))
	case m.IsDir():
		e.Type = "dir"
	case m&iofs.ModeSymlink != 0:
		e.Type, e.Size, e.Target = "symlink", int64(len(st.LinkTarget)), st.LinkTarget
	case m&iofs.ModeCharDevice != 0:
		e.Type, e.Device = "chardev", fmt.Sprintf("%d:%d", st.Major, st.Minor)
	case m&iofs.ModeDevice != 0:
		e.Type, e.Device = "blockdev", fmt.Sprintf("%d:%d", st.Major, st.Minor)
	case m&iofs.ModeNamedPipe != 0:
		e.Type = "fifo"
	case m&iofs.ModeSocket != 0:
		e.Type = "socket"
	default:
		return e, fmt.Errorf("unknown file type %v", m.Type())
	}
	return e, nil
}

// unixPerm converts Go's mode bits back to the 07777 form of stat(2).
func unixPerm(m iofs.FileMode) uint32 {
	p := uint32(m.Perm())
	if m&iofs.ModeSetuid != 0 {
		p |= 0o4000
	}
	if m&iofs.ModeSetgid != 0 {
		p |= 0o2000
	}
	if m&iofs.ModeSticky != 0 {
		p |= 0o1000
	}
	return p
}

func sortListing(l Listing) {
	sort.Slice(l, func(i, j int) bool { return l[i].Path < l[j].Path })
}

func digest(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}
