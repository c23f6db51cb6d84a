// Package kexec holds the checks of YakirOS's live kernel upgrade (the
// seven phases of yakiros-reference §12.2) as functions that change
// nothing, so that `graphctl kexec --dry-run` can run every one of them and
// say, phase by phase, whether a real kexec could proceed. docs/KEXEC.md has
// the user's view.
package kexec

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Header is what the kexec_file_load bzImage64 loader needs from a kernel
// file's setup header (Documentation/arch/x86/boot.rst, "The Real-Mode
// Kernel Header"). Offsets below are from the start of the file.
type Header struct {
	Protocol        uint16 // boot protocol version, e.g. 0x020f for 2.15
	SetupSects      int    // 512-byte sectors of real-mode setup code after the boot sector
	SysSize         int64  // bytes of protected-mode code (syssize × 16)
	LoadFlags       uint8
	XLoadFlags      uint16
	KernelAlignment uint32 // physical alignment the kernel needs
	Relocatable     bool
	CmdlineSize     uint32 // longest command line, without its NUL
	InitSize        uint32 // bytes of memory the kernel needs to decompress and start
	FileSize        int64
}

// Boot protocol constants used by the checks.
const (
	hdrSize        = 0x268 // the header up to and including init_size and handover_offset
	loadedHigh     = 0x01  // loadflags: protected-mode code loaded at 0x100000
	xlfKernel64    = 0x01  // xloadflags: has the 64-bit entry point at 0x200
	xlfAbove4G     = 0x02  // xloadflags: kernel, boot params and cmdline may live above 4 GiB
	minProtocol    = 0x020c
	bootFlagMagic  = 0xaa55
	headerMagic    = "HdrS"
	defaultSectors = 4 // setup_sects 0 means 4 (boot.rst)
)

// ParseBzImage reads and checks the setup header of the size-byte kernel
// image r. It accepts exactly what the x86-64 kexec_file_load loader
// accepts (arch/x86/kernel/kexec-bzimage64.c, bzImage64_probe: protocol ≥
// 2.12, LOADED_HIGH, a 64-bit entry, loadable above 4 GiB) and also rejects
// a file shorter than its header says: a truncated copy would load and
// then fail to boot.
func ParseBzImage(r io.ReaderAt, size int64) (Header, error) {
	buf := make([]byte, hdrSize)
	if size < hdrSize {
		return Header{}, fmt.Errorf("not a bzImage: %d bytes, shorter than the %d-byte setup header", size, hdrSize)
	}
	if _, err := r.ReadAt(buf, 0); err != nil {
		return Header{}, fmt.Errorf("read setup header: %w", err)
	}
	le := binary.LittleEndian
	if string(buf[0x202:0x206]) != headerMagic {
		return Header{}, fmt.Errorf("not a bzImage: no %q magic at 0x202 (found %q)", headerMagic, buf[0x202:0x206])
	}
	if f := le.Uint16(buf[0x1fe:]); f != bootFlagMagic {
		return Header{}, fmt.Errorf("not a bzImage: boot_flag is %#04x, want %#04x", f, bootFlagMagic)
	}
	h := Header{
		Protocol:        le.Uint16(buf[0x206:]),
		SetupSects:      int(buf[0x1f1]),
		SysSize:         int64(le.Uint32(buf[0x1f4:])) * 16,
		LoadFlags:       buf[0x211],
		KernelAlignment: le.Uint32(buf[0x230:]),
		Relocatable:     buf[0x234] != 0,
		XLoadFlags:      le.Uint16(buf[0x236:]),
		CmdlineSize:     le.Uint32(buf[0x238:]),
		InitSize:        le.Uint32(buf[0x260:]),
		FileSize:        size,
	}
	if h.SetupSects == 0 {
		h.SetupSects = defaultSectors
	}
	var errs []error
	if h.Protocol < minProtocol {
		errs = append(errs, fmt.Errorf("boot protocol %s is older than %s", protocol(h.Protocol), protocol(minProtocol)))
	}
	if h.LoadFlags&loadedHigh == 0 {
		errs = append(errs, errors.New("loadflags lack LOADED_HIGH: not a bzImage (zImage?)"))
	}
	if h.XLoadFlags&xlfKernel64 == 0 {
		errs = append(errs, errors.New("xloadflags lack XLF_KERNEL_64: no 64-bit entry point"))
	}
	if h.XLoadFlags&xlfAbove4G == 0 {
		errs = append(errs, errors.New("xloadflags lack XLF_CAN_BE_LOADED_ABOVE_4G"))
	}
	if h.KernelAlignment == 0 || h.KernelAlignment&(h.KernelAlignment-1) != 0 {
		errs = append(errs, fmt.Errorf("kernel_alignment %#x is not a power of two", h.KernelAlignment))
	}
	if h.InitSize == 0 {
		errs = append(errs, errors.New("init_size is 0"))
	}
	if want := h.ImageSize(); size < want {
		errs = append(errs, fmt.Errorf("truncated: %d bytes, the header describes %d (%d setup sectors + %d bytes of kernel)", size, want, h.SetupSects, h.SysSize))
	}
	if err := errors.Join(errs...); err != nil {
		return h, fmt.Errorf("bzImage protocol %s: %w", protocol(h.Protocol), err)
	}
	return h, nil
}

// ImageSize is the file size the header describes: the boot sector, the
// setup sectors and the protected-mode code. A signed kernel is longer (its
// signature is appended), never shorter.
func (h Header) ImageSize() int64 {
	return int64(h.SetupSects+1)*512 + h.SysSize
}

// LoadSize is the memory the kernel occupies once loaded: init_size rounded
// up to its alignment.
func (h Header) LoadSize() int64 {
	a := int64(max(h.KernelAlignment, 1))
	return (int64(h.InitSize) + a - 1) / a * a
}

// ProtocolString renders the boot protocol version as "2.15".
func (h Header) ProtocolString() string { return protocol(h.Protocol) }

func protocol(v uint16) string { return fmt.Sprintf("%d.%02d", v>>8, v&0xff) }
