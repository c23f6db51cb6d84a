// Package diskimage writes a raw GPT disk image whose partitions hold ext4
// file systems filled from rootfs trees, byte-identical for the same Spec.
//
// The image is built with go-diskfs (partition/gpt, filesystem/ext4), used
// unmodified. Its ext4 writer is not reproducible on its own: it stamps the
// wall clock into the superblock (mount, write, last-check and mkfs times,
// in the primary and every backup copy) and into every inode it creates or
// rewrites (atime, ctime, mtime, crtime), and it draws the directory hash
// seed from crypto/rand. Every other byte follows from the calls we make,
// except the inode checksum go-diskfs stores even without metadata_csum,
// which covers the times. So once go-diskfs has finished, a normalisation
// pass (normalise.go) rewrites exactly those fields in place: the times
// become Spec.Epoch, the hash seed is derived from Spec.Seed and the inode
// checksums are recomputed. No other checksum covers them in the file
// systems we create (metadata_csum and gdt_csum are off); the pass refuses
// file systems where one would.
//
// Rewriting afterwards, rather than feeding go-diskfs a fake clock or
// random source, needs no change to go-diskfs and no process-wide state
// (uuid.SetRand would affect every goroutine).
package diskimage

import (
	"errors"
	"fmt"
	"math"
	"os"
	"time"
	"unicode/utf16"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/backend"
	"github.com/diskfs/go-diskfs/disk"
	"github.com/diskfs/go-diskfs/filesystem/ext4"
	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/google/uuid"

	"yakimg/rootfs"
)

const (
	mib        = 1 << 20
	sectorSize = 512
	// The first partition starts 1 MiB into the disk and 1 MiB is left at
	// the end, which holds the backup GPT (33 sectors) and keeps every
	// partition MiB-aligned.
	leadBytes = 1 * mib
	tailBytes = 1 * mib

	maxLabelBytes   = 16 // ext4 s_volume_name
	maxGPTNameUnits = 36 // GPT partition name, UTF-16 code units
)

// Partition is one GPT partition holding an ext4 file system.
type Partition struct {
	Name    string       // GPT partition name, e.g. "yakimg-root"
	Label   string       // ext4 volume label, e.g. "root" (at most 16 bytes)
	SizeMiB int          // partition size
	Tree    *rootfs.Tree // contents; nil = empty file system
}

// Spec describes a disk image.
type Spec struct {
	Epoch      time.Time   // SOURCE_DATE_EPOCH: every timestamp in the image
	Seed       []byte      // build identity; every GUID, UUID and hash seed derives from it
	Partitions []Partition // in order: partition 1 = /dev/vda1, ...
}

// Layout reports where Write put things and which identifiers it chose.
type Layout struct {
	DiskGUID   string
	Partitions []PartitionLayout
}

// PartitionLayout describes one written partition. GUIDs and UUIDs are in
// lower-case canonical form, as blkid and the kernel's root=PARTUUID= use them.
type PartitionLayout struct {
	Index      int    // 1-based partition number
	Name       string // GPT partition name
	Label      string // ext4 volume label
	GUID       string // unique partition GUID (PARTUUID)
	FSUUID     string // ext4 file system UUID (UUID)
	StartBytes int64  // offset of the partition from the start of the disk
	SizeBytes  int64
}

// Write creates the image at path. The file must not exist; on error it is
// removed again, so the caller can write to a temporary name and rename it
// into place on success.
func Write(path string, spec Spec) (*Layout, error) {
	if err := spec.validate(); err != nil {
		return nil, fmt.Errorf("disk image %s: %w", path, err)
	}
	layout := plan(spec)
	last := layout.Partitions[len(layout.Partitions)-1]
	size := last.StartBytes + last.SizeBytes + tailBytes

	d, err := diskfs.Create(path, size, diskfs.SectorSize512)
	if err != nil {
		return nil, fmt.Errorf("create disk image %s: %w", path, err)
	}
	err = fill(d, spec, layout)
	if cerr := d.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close %s: %w", path, cerr)
	}
	if err != nil {
		if rerr := os.Remove(path); rerr != nil {
			err = errors.Join(err, rerr)
		}
		return nil, fmt.Errorf("disk image %s: %w", path, err)
	}
	return layout, nil
}

// plan places the partitions back to back after the lead-in and derives
// every identifier from the seed.
func plan(spec Spec) *Layout {
	l := &Layout{DiskGUID: deriveUUID(spec.Seed, "gpt-disk").String()}
	start := int64(leadBytes)
	for i, p := range spec.Partitions {
		n := i + 1
		size := int64(p.SizeMiB) * mib
		l.Partitions = append(l.Partitions, PartitionLayout{
			Index:      n,
			Name:       p.Name,
			Label:      labelOf(p),
			GUID:       deriveUUID(spec.Seed, fmt.Sprintf("gpt-partition/%d", n)).String(),
			FSUUID:     deriveUUID(spec.Seed, fmt.Sprintf("ext4-uuid/%d", n)).String(),
			StartBytes: start,
			SizeBytes:  size,
		})
		start += size
	}
	return l
}

func fill(d *disk.Disk, spec Spec, layout *Layout) error {
	table := &gpt.Table{
		LogicalSectorSize:  sectorSize,
		PhysicalSectorSize: sectorSize,
		ProtectiveMBR:      true,
		GUID:               layout.DiskGUID,
	}
	for _, p := range layout.Partitions {
		table.Partitions = append(table.Partitions, &gpt.Partition{
			Index: p.Index,
			Start: uint64(p.StartBytes / sectorSize),
			End:   uint64((p.StartBytes+p.SizeBytes)/sectorSize - 1),
			Type:  gpt.LinuxFilesystem,
			Name:  p.Name,
			GUID:  p.GUID,
		})
	}
	if err := d.Partition(table); err != nil {
		return fmt.Errorf("write GPT: %w", err)
	}
	dev, err := d.Backend.Writable()
	if err != nil {
		return err
	}
	for i, p := range layout.Partitions {
		if err := writeExt4(d.Backend, dev, spec, spec.Partitions[i], p); err != nil {
			return fmt.Errorf("partition %d (%s): %w", p.Index, p.Name, err)
		}
	}
	f, err := d.Backend.Sys()
	if err != nil {
		return err
	}
	return f.Sync()
}

// writeExt4 creates the file system of one partition, fills it and
// normalises what go-diskfs left nondeterministic.
func writeExt4(b backend.Storage, dev readWriterAt, spec Spec, p Partition, pl PartitionLayout) error {
	fsUUID := uuid.MustParse(pl.FSUUID)
	fs, err := ext4.Create(b, pl.SizeBytes, pl.StartBytes, sectorSize, &ext4.Params{
		UUID:       &fsUUID,
		VolumeName: pl.Label,
	})
	if err != nil {
		return fmt.Errorf("create ext4: %w", err)
	}
	if p.Tree != nil {
		if err := populate(fs, p.Tree); err != nil {
			return err
		}
	}
	seed := deriveUUID(spec.Seed, fmt.Sprintf("ext4-hash-seed/%d", pl.Index))
	if err := normaliseExt4(dev, pl.StartBytes, spec.Epoch, seed); err != nil {
		return fmt.Errorf("normalise ext4: %w", err)
	}
	return nil
}

// labelOf is the label go-diskfs writes: it replaces an empty one with its
// own default.
func labelOf(p Partition) string {
	if p.Label == "" {
		return ext4.DefaultVolumeName
	}
	return p.Label
}

func (s Spec) validate() error {
	if len(s.Seed) == 0 {
		return errors.New("empty seed: every identifier derives from it")
	}
	if sec := s.Epoch.Unix(); sec < 0 || sec > math.MaxUint32 {
		return fmt.Errorf("epoch %s outside 1970..2106, which ext4 cannot store", s.Epoch.UTC().Format(time.RFC3339))
	}
	if len(s.Partitions) == 0 {
		return errors.New("no partitions")
	}
	for i, p := range s.Partitions {
		if err := p.validate(); err != nil {
			return fmt.Errorf("partition %d (%q): %w", i+1, p.Name, err)
		}
	}
	return nil
}

func (p Partition) validate() error {
	if p.SizeMiB <= 0 {
		return fmt.Errorf("size %d MiB", p.SizeMiB)
	}
	if len(p.Label) > maxLabelBytes {
		return fmt.Errorf("ext4 label %q longer than %d bytes", p.Label, maxLabelBytes)
	}
	for _, r := range p.Label {
		if r > 0x7e || r < 0x20 {
			return fmt.Errorf("ext4 label %q is not printable ASCII", p.Label)
		}
	}
	if n := len(utf16.Encode([]rune(p.Name))); n > maxGPTNameUnits {
		return fmt.Errorf("GPT name longer than %d UTF-16 units", maxGPTNameUnits)
	}
	if p.Tree == nil {
		return nil
	}
	// go-diskfs' ext4 writer has no mknod; fail before writing anything.
	return p.Tree.Walk(func(e *rootfs.Entry) error {
		if e.Kind == rootfs.CharDev || e.Kind == rootfs.BlockDev {
			return fmt.Errorf("%s: cannot write %s nodes to ext4 (go-diskfs has no mknod); create it at boot instead (devtmpfs)", e.Path, e.Kind)
		}
		return nil
	})
}
