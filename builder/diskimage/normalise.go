package diskimage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"time"

	"github.com/google/uuid"
)

type readWriterAt interface {
	io.ReaderAt
	io.WriterAt
}

// ext4 on-disk layout (kernel Documentation/filesystems/ext4). Superblock
// offsets are relative to the superblock, inode offsets to the inode.
const (
	superblockOffset = 1024 // of the primary superblock in the file system
	superblockSize   = 1024

	sbBlocksCountLo    = 0x04
	sbFirstDataBlock   = 0x14
	sbLogBlockSize     = 0x18
	sbBlocksPerGroup   = 0x20
	sbInodesPerGroup   = 0x28
	sbMtime            = 0x2c // last mount
	sbWtime            = 0x30 // last write
	sbMagic            = 0x38
	sbLastcheck        = 0x40
	sbInodeSize        = 0x58
	sbFeatureCompat    = 0x5c
	sbFeatureIncompat  = 0x60
	sbFeatureROCompat  = 0x64
	sbUUID             = 0x68
	sbHashSeed         = 0xec
	sbDescSize         = 0xfe
	sbMkfsTime         = 0x108
	sbBlocksCountHi    = 0x150
	sbMtimeHi          = 0x274
	sbWtimeHi          = 0x275
	sbMkfsTimeHi       = 0x276
	sbLastcheckHi      = 0x277
	sbChecksumSeed     = 0x270
	ext4Magic          = 0xef53
	compatSparseSuper2 = 0x200
	incompatMetaBG     = 0x10
	incompat64Bit      = 0x80
	roCompatSparse     = 0x1
	roCompatGDTCsum    = 0x10
	roCompatMetaCsum   = 0x400

	gdInodeBitmapLo = 0x04
	gdInodeTableLo  = 0x08
	gdInodeBitmapHi = 0x24
	gdInodeTableHi  = 0x28

	inMode        = 0x00
	inAtime       = 0x08
	inCtime       = 0x0c
	inMtime       = 0x10
	inGeneration  = 0x64
	inChecksumLo  = 0x7c
	inGoodOld     = 128 // size of an inode without the extra fields
	inExtraIsize  = 0x80
	inChecksumHi  = 0x82
	inCtimeExtra  = 0x84
	inMtimeExtra  = 0x88
	inAtimeExtra  = 0x8c
	inCrtime      = 0x90
	inCrtimeExtra = 0x94
)

// normaliseExt4 rewrites the fields go-diskfs fills from the clock or from
// crypto/rand in the ext4 file system that starts at byte start of dev:
//   - in the primary and every backup superblock: s_mtime, s_wtime,
//     s_lastcheck, s_mkfs_time (with their _hi bytes) become epoch, and
//     s_hash_seed becomes hashSeed;
//   - in every in-use inode: i_atime, i_ctime, i_mtime, i_crtime and their
//     *_extra words (as far as i_extra_isize covers them) become epoch, and
//     the inode checksum (i_checksum_lo/_hi), which go-diskfs stores even
//     without metadata_csum and which covers the times, is recomputed.
//
// Nothing else is touched. It refuses file systems with metadata_csum or
// gdt_csum, whose superblock and descriptor checksums it does not maintain,
// and layouts (sparse_super2, meta_bg) whose backups it would not find.
func normaliseExt4(dev readWriterAt, start int64, epoch time.Time, hashSeed uuid.UUID) error {
	primary := make([]byte, superblockSize)
	if _, err := dev.ReadAt(primary, start+superblockOffset); err != nil {
		return fmt.Errorf("read superblock: %w", err)
	}
	g, err := parseGeometry(primary)
	if err != nil {
		return err
	}
	for _, group := range g.superblockGroups() {
		off := start + g.superblockOffset(group)
		sb := make([]byte, superblockSize)
		if _, err := dev.ReadAt(sb, off); err != nil {
			return fmt.Errorf("read superblock of group %d: %w", group, err)
		}
		if le16(sb, sbMagic) != ext4Magic || !bytes.Equal(sb[sbUUID:sbUUID+16], primary[sbUUID:sbUUID+16]) {
			return fmt.Errorf("no backup superblock of this file system in group %d", group)
		}
		stampSuperblock(sb, epoch, hashSeed)
		if _, err := dev.WriteAt(sb, off); err != nil {
			return fmt.Errorf("write superblock of group %d: %w", group, err)
		}
	}

	gdt := make([]byte, g.groups*g.descSize)
	if _, err := dev.ReadAt(gdt, start+(g.firstDataBlock+1)*g.blockSize); err != nil {
		return fmt.Errorf("read group descriptors: %w", err)
	}
	for group := range g.groups {
		d := gdt[group*g.descSize : (group+1)*g.descSize]
		if err := g.stampInodeTable(dev, start, group, d, epoch); err != nil {
			return fmt.Errorf("group %d: %w", group, err)
		}
	}
	return nil
}

// geometry is what normaliseExt4 needs to know of a file system.
type geometry struct {
	blockSize      int64
	firstDataBlock int64
	blocksPerGroup int64
	inodesPerGroup int64
	inodeSize      int64
	descSize       int64
	groups         int64
	sparseSuper    bool
	checksumSeed   uint32 // s_checksum_seed, the start of inode checksums
}

func parseGeometry(sb []byte) (*geometry, error) {
	if le16(sb, sbMagic) != ext4Magic {
		return nil, errors.New("no ext4 superblock")
	}
	compat, incompat, roCompat := le32(sb, sbFeatureCompat), le32(sb, sbFeatureIncompat), le32(sb, sbFeatureROCompat)
	if roCompat&(roCompatMetaCsum|roCompatGDTCsum) != 0 {
		return nil, errors.New("metadata_csum/gdt_csum enabled: normalising would invalidate checksums")
	}
	if compat&compatSparseSuper2 != 0 || incompat&incompatMetaBG != 0 {
		return nil, errors.New("sparse_super2/meta_bg layouts are not supported")
	}
	g := &geometry{
		blockSize:      1024 << le32(sb, sbLogBlockSize),
		firstDataBlock: int64(le32(sb, sbFirstDataBlock)),
		blocksPerGroup: int64(le32(sb, sbBlocksPerGroup)),
		inodesPerGroup: int64(le32(sb, sbInodesPerGroup)),
		inodeSize:      int64(le16(sb, sbInodeSize)),
		descSize:       32,
		sparseSuper:    roCompat&roCompatSparse != 0,
		checksumSeed:   le32(sb, sbChecksumSeed),
	}
	blocks := int64(le32(sb, sbBlocksCountLo))
	if incompat&incompat64Bit != 0 {
		blocks |= int64(le32(sb, sbBlocksCountHi)) << 32
		g.descSize = int64(le16(sb, sbDescSize))
	}
	if g.blocksPerGroup == 0 || g.inodeSize < inGoodOld || g.descSize < 32 || g.inodesPerGroup%8 != 0 {
		return nil, errors.New("implausible superblock geometry")
	}
	g.groups = (blocks - g.firstDataBlock + g.blocksPerGroup - 1) / g.blocksPerGroup
	return g, nil
}

// superblockGroups lists the block groups holding a superblock copy: all of
// them, or with sparse_super group 0, 1 and the powers of 3, 5 and 7.
func (g *geometry) superblockGroups() []int64 {
	var groups []int64
	for n := range g.groups {
		if !g.sparseSuper || n <= 1 || isPower(n, 3) || isPower(n, 5) || isPower(n, 7) {
			groups = append(groups, n)
		}
	}
	return groups
}

func isPower(n, base int64) bool {
	for n > 1 && n%base == 0 {
		n /= base
	}
	return n == 1
}

// superblockOffset is where the copy in group lies, relative to the start
// of the file system. Group 0's is always at byte 1024, whatever the block
// size; the others fill the first block of their group.
func (g *geometry) superblockOffset(group int64) int64 {
	if group == 0 {
		return superblockOffset
	}
	return (group*g.blocksPerGroup + g.firstDataBlock) * g.blockSize
}

// stampInodeTable stamps every in-use inode of the group described by d.
func (g *geometry) stampInodeTable(dev readWriterAt, start, group int64, d []byte, epoch time.Time) error {
	bitmapBlock, tableBlock := int64(le32(d, gdInodeBitmapLo)), int64(le32(d, gdInodeTableLo))
	if g.descSize >= 64 {
		bitmapBlock |= int64(le32(d, gdInodeBitmapHi)) << 32
		tableBlock |= int64(le32(d, gdInodeTableHi)) << 32
	}
	bitmap := make([]byte, g.inodesPerGroup/8)
	if _, err := dev.ReadAt(bitmap, start+bitmapBlock*g.blockSize); err != nil {
		return fmt.Errorf("read inode bitmap: %w", err)
	}
	table := make([]byte, g.inodesPerGroup*g.inodeSize)
	tableOff := start + tableBlock*g.blockSize
	if _, err := dev.ReadAt(table, tableOff); err != nil {
		return fmt.Errorf("read inode table: %w", err)
	}
	changed := false
	for i := range g.inodesPerGroup {
		in := table[i*g.inodeSize : (i+1)*g.inodeSize]
		// Reserved inodes are marked in use even where go-diskfs leaves
		// them blank; a blank inode has no times to normalise.
		if bitmap[i/8]&(1<<(i%8)) == 0 || le16(in, inMode) == 0 {
			continue
		}
		stampInode(in, epoch)
		setInodeChecksum(in, uint32(group*g.inodesPerGroup+i+1), g.checksumSeed)
		changed = true
	}
	if !changed {
		return nil
	}
	if _, err := dev.WriteAt(table, tableOff); err != nil {
		return fmt.Errorf("write inode table: %w", err)
	}
	return nil
}

// stampSuperblock sets the superblock's clock-derived times to epoch (whole
// seconds, 40 bits: the low 32 in the field, the high 8 in its _hi byte) and
// its directory hash seed.
func stampSuperblock(sb []byte, epoch time.Time, hashSeed uuid.UUID) {
	sec := uint64(epoch.Unix())
	for _, f := range [][2]int{{sbMtime, sbMtimeHi}, {sbWtime, sbWtimeHi}, {sbLastcheck, sbLastcheckHi}, {sbMkfsTime, sbMkfsTimeHi}} {
		binary.LittleEndian.PutUint32(sb[f[0]:], uint32(sec))
		sb[f[1]] = byte(sec >> 32)
	}
	copy(sb[sbHashSeed:sbHashSeed+16], hashSeed[:])
}

// stampInode sets an inode's four times to epoch. The low 32 bits of the
// seconds go into the base fields; each *_extra word holds the two bits
// above them (counted from the signed 32-bit value) and the nanoseconds.
// Only the extra fields inside i_extra_isize exist.
func stampInode(in []byte, epoch time.Time) {
	sec := epoch.Unix()
	lo := uint32(sec)
	extra := uint32((sec-int64(int32(lo)))>>32)&3 | uint32(epoch.Nanosecond())<<2
	for _, off := range []int{inAtime, inCtime, inMtime} {
		binary.LittleEndian.PutUint32(in[off:], lo)
	}
	if len(in) <= inGoodOld {
		return
	}
	end := min(inGoodOld+int(le16(in, inExtraIsize)), len(in))
	for _, f := range []struct {
		off int
		v   uint32
	}{{inCtimeExtra, extra}, {inMtimeExtra, extra}, {inAtimeExtra, extra}, {inCrtime, lo}, {inCrtimeExtra, extra}} {
		if f.off+4 <= end {
			binary.LittleEndian.PutUint32(in[f.off:], f.v)
		}
	}
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// setInodeChecksum stores the ext4 inode checksum: crc32c, without the
// usual pre- and post-inversion, over the inode number, i_generation and
// the inode with both checksum halves zeroed, seeded with s_checksum_seed.
func setInodeChecksum(in []byte, number, seed uint32) {
	hasHi := len(in) > inGoodOld && inGoodOld+int(le16(in, inExtraIsize)) >= inChecksumHi+2
	binary.LittleEndian.PutUint16(in[inChecksumLo:], 0)
	if hasHi {
		binary.LittleEndian.PutUint16(in[inChecksumHi:], 0)
	}
	var hdr [8]byte
	binary.LittleEndian.PutUint32(hdr[0:], number)
	copy(hdr[4:], in[inGeneration:inGeneration+4])
	sum := crc32cRaw(crc32cRaw(seed, hdr[:]), in)
	binary.LittleEndian.PutUint16(in[inChecksumLo:], uint16(sum))
	if hasHi {
		binary.LittleEndian.PutUint16(in[inChecksumHi:], uint16(sum>>16))
	}
}

// crc32cRaw continues a crc32c the way the kernel's crc32c() does; Go's
// crc32.Update inverts on the way in and out.
func crc32cRaw(crc uint32, b []byte) uint32 {
	return ^crc32.Update(^crc, castagnoli, b)
}

func le16(b []byte, off int) uint16 { return binary.LittleEndian.Uint16(b[off:]) }
func le32(b []byte, off int) uint32 { return binary.LittleEndian.Uint32(b[off:]) }
