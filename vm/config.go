package vm

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"yakimg/suites/report"
)

// Defaults for the zero values of Config.
const (
	DefaultQEMU     = "qemu-system-x86_64"
	DefaultMachine  = "pc"
	DefaultMemoryMB = 1024
	DefaultCPUs     = 1
	DefaultTimeout  = 10 * time.Minute
)

// Accelerators.
const (
	AccelAuto = "auto"
	AccelTCG  = "tcg"
	AccelKVM  = "kvm"
)

// Config says what to boot and how.
type Config struct {
	Kernel, Initrd, Disk string // absolute paths; Initrd and Disk may be empty
	Append               string // kernel command line
	MemoryMB, CPUs       int    // default DefaultMemoryMB, DefaultCPUs
	Machine              string // default "pc"; the disk is virtio-blk on PCI, so the machine needs PCI
	Accel                string // "auto" (default), "tcg", "kvm"
	TCGThreads           string // "single" (default) or "multi": see tcgthreads.go
	// Timeout bounds the whole boot; QEMU is killed when it passes.
	// Default DefaultTimeout.
	Timeout time.Duration
	// ConsoleLog, when set, receives everything the guest printed on ttyS0
	// as it arrives.
	ConsoleLog string
	QEMU       string // binary, default DefaultQEMU looked up in PATH
	// CacheDir is where the accelerator probe's verdict is remembered;
	// empty means probe on every run.
	CacheDir string
	// OnFrame, when set, is called for every report-channel frame the
	// decoder accepted, as it arrives, from a single goroutine. A report
	// frame is only trusted once its done frame follows.
	OnFrame func(kind string, f report.Frame)
	Stderr  io.Writer // progress and diagnostic lines; nil discards them
}

// withDefaults fills the zero values and checks the rest. Its errors are
// usage errors: the caller asked for something that cannot run.
func (c Config) withDefaults() (Config, error) {
	if c.Machine == "" {
		c.Machine = DefaultMachine
	}
	if c.Accel == "" {
		c.Accel = AccelAuto
	}
	if c.TCGThreads == "" {
		c.TCGThreads = TCGThreadsSingle
	}
	if c.MemoryMB == 0 {
		c.MemoryMB = DefaultMemoryMB
	}
	if c.CPUs == 0 {
		c.CPUs = DefaultCPUs
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.QEMU == "" {
		c.QEMU = DefaultQEMU
	}
	if c.Stderr == nil {
		c.Stderr = io.Discard
	}
	switch c.Accel {
	case AccelAuto, AccelTCG, AccelKVM:
	default:
		return c, fmt.Errorf("accelerator %q: want auto, tcg or kvm", c.Accel)
	}
	switch c.TCGThreads {
	case TCGThreadsSingle, TCGThreadsMulti:
	default:
		return c, fmt.Errorf("TCG threads %q: want single or multi", c.TCGThreads)
	}
	if c.MemoryMB < 0 || c.CPUs < 0 || c.Timeout < 0 {
		return c, fmt.Errorf("memory %d MB, %d CPUs, timeout %v: must not be negative", c.MemoryMB, c.CPUs, c.Timeout)
	}
	if c.Kernel == "" {
		return c, errors.New("no kernel given")
	}
	for _, f := range []struct{ what, path string }{{"kernel", c.Kernel}, {"initrd", c.Initrd}, {"disk", c.Disk}} {
		if f.path == "" {
			continue
		}
		st, err := os.Stat(f.path)
		if err != nil {
			return c, fmt.Errorf("%s: %w", f.what, err)
		}
		if !st.Mode().IsRegular() {
			return c, fmt.Errorf("%s %s: not a regular file", f.what, f.path)
		}
	}
	return c, nil
}

// args is QEMU's command line without the binary. The console is serial
// port 1 (ttyS0) and the report channel serial port 2 (ttyS1), each a unix
// socket QEMU connects to as a client.
func (c Config) args(accel, consoleSock, reportSock string) []string {
	a := []string{
		"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		"-machine", c.Machine,
		"-accel", accel,
		"-m", strconv.Itoa(c.MemoryMB),
		"-smp", strconv.Itoa(c.CPUs),
		"-kernel", c.Kernel,
	}
	if c.Initrd != "" {
		a = append(a, "-initrd", c.Initrd)
	}
	if c.Append != "" {
		a = append(a, "-append", c.Append)
	}
	if c.Disk != "" {
		// snapshot=on keeps the image file unmodified whatever the guest writes.
		a = append(a, "-drive", "file="+optEscape(c.Disk)+",format=raw,if=virtio,snapshot=on")
	}
	return append(a,
		"-chardev", "socket,id=console,path="+optEscape(consoleSock),
		"-serial", "chardev:console",
		"-chardev", "socket,id=report,path="+optEscape(reportSock),
		"-serial", "chardev:report",
	)
}

// optEscape quotes a value inside a QEMU option list, where a comma
// separates options and a doubled comma is a literal one.
func optEscape(s string) string { return strings.ReplaceAll(s, ",", ",,") }
