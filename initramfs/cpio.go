// Package initramfs writes a rootfs.Tree as the kernel's initramfs: a newc
// cpio archive, optionally zstd-compressed, byte-identical for the same tree
// and epoch.
package initramfs

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/u-root/u-root/pkg/cpio"

	"yakimg/rootfs"
)

// WriteCPIO writes t as a newc archive: every entry in Tree walk order
// (parents before children, as the kernel's unpacker needs), uid, gid and
// permissions from the tree, every mtime = epoch. Inode numbers count up in
// walk order and the dev fields are zero, so nothing depends on the host.
func WriteCPIO(w io.Writer, t *rootfs.Tree, epoch time.Time) error {
	mtime := epoch.Unix()
	if mtime < 0 || mtime > math.MaxUint32 {
		return fmt.Errorf("cpio: epoch %d does not fit the newc mtime field", mtime)
	}
	bw := bufio.NewWriter(w)
	rw := cpio.Newc.Writer(bw)
	var ino uint64
	err := t.Walk(func(e *rootfs.Entry) error {
		ino++
		rec, err := record(e, ino, uint64(mtime))
		if err != nil {
			return err
		}
		if err := rw.WriteRecord(rec); err != nil {
			return fmt.Errorf("cpio: write %s: %w", e.Path, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := cpio.WriteTrailer(rw); err != nil {
		return fmt.Errorf("cpio: write trailer: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("cpio: %w", err)
	}
	return nil
}

func record(e *rootfs.Entry, ino, mtime uint64) (cpio.Record, error) {
	info := cpio.Info{
		Ino:   ino,
		Mode:  uint64(e.Perm & 0o7777),
		UID:   uint64(e.UID),
		GID:   uint64(e.GID),
		NLink: 1,
		MTime: mtime,
		Name:  e.Path,
	}
	var data []byte
	switch e.Kind {
	case rootfs.Regular:
		// A regular file with nlink > 1 would make the kernel look for
		// hard-link partners by inode number; every file here stands alone.
		info.Mode |= cpio.S_IFREG
		data = e.Data
	case rootfs.Dir:
		info.Mode |= cpio.S_IFDIR
		info.NLink = 2
	case rootfs.Symlink:
		info.Mode |= cpio.S_IFLNK
		data = []byte(e.Target)
	case rootfs.CharDev:
		info.Mode |= cpio.S_IFCHR
		info.Rmajor, info.Rminor = uint64(e.Major), uint64(e.Minor)
	case rootfs.BlockDev:
		info.Mode |= cpio.S_IFBLK
		info.Rmajor, info.Rminor = uint64(e.Major), uint64(e.Minor)
	default:
		return cpio.Record{}, fmt.Errorf("cpio: %s: unsupported kind %s", e.Path, e.Kind)
	}
	if len(data) > math.MaxUint32 {
		return cpio.Record{}, fmt.Errorf("cpio: %s: %d bytes exceed the newc size field", e.Path, len(data))
	}
	if strings.ContainsRune(e.Path, 0) {
		return cpio.Record{}, fmt.Errorf("cpio: %q: NUL in name", e.Path)
	}
	if data == nil {
		return cpio.Record{Info: info}, nil
	}
	return cpio.StaticRecord(data, info), nil
}

// zstd settings are part of the output's identity: changing any of them
// changes the bytes of every image. The 1 MiB window keeps the kernel's
// decompression buffer small; one goroutine makes block boundaries fixed.
var zstdOptions = []zstd.EOption{
	zstd.WithEncoderConcurrency(1),
	zstd.WithEncoderLevel(zstd.SpeedBetterCompression),
	zstd.WithWindowSize(1 << 20),
	zstd.WithEncoderCRC(true),
}

// WriteZstd writes the WriteCPIO archive zstd-compressed. The output is
// byte-identical across runs and machines for the same tree and epoch.
func WriteZstd(w io.Writer, t *rootfs.Tree, epoch time.Time) error {
	enc, err := zstd.NewWriter(w, zstdOptions...)
	if err != nil {
		return fmt.Errorf("zstd: %w", err)
	}
	if err := WriteCPIO(enc, t, epoch); err != nil {
		enc.Close()
		return err
	}
	if err := enc.Close(); err != nil {
		return fmt.Errorf("zstd: %w", err)
	}
	return nil
}
