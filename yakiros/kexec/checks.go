package kexec

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"yakimg/yakiros/control"
)

// system runs the checks against the files and kernel interfaces o names.
type system struct{ o Options }

const (
	// loadOverhead covers what kexec_file_load loads besides the kernel
	// and initrd: boot parameters, command line, purgatory.
	loadOverhead = 1 << 20
	// criuTimeout bounds each criu run.
	criuTimeout = 20 * time.Second
	// capSysBoot is CAP_SYS_BOOT: kexec_file_load and reboot need it.
	capSysBoot = 22
	// defaultCmdlineSize applies when the kernel header is unusable.
	defaultCmdlineSize = 2047
)

// kernel parses the new kernel's bzImage header.
func (s system) kernel() (*Header, control.KexecCheck) {
	const name = "kernel"
	if s.o.Kernel == "" {
		return nil, fail(name, "no kernel path given")
	}
	f, fi, err := openRegular(s.o.Kernel)
	if err != nil {
		return nil, fail(name, "%v", err)
	}
	defer f.Close()
	h, err := ParseBzImage(f, fi.Size())
	if err != nil {
		return nil, fail(name, "%s: %v", s.o.Kernel, err)
	}
	return &h, pass(name, "bzImage protocol %s, %d bytes, 64-bit entry, relocatable=%v, needs %d MiB (init_size %d, alignment %#x)",
		h.ProtocolString(), h.FileSize, h.Relocatable, h.LoadSize()>>20, h.InitSize, h.KernelAlignment)
}

// initrdMagics are the formats the kernel unpacks into its initramfs: a
// newc cpio, or one compressed with a decompressor it may have built in.
var initrdMagics = []struct {
	format string
	magic  []byte
}{
	{"cpio (newc)", []byte("070701")},
	{"cpio (newc, crc)", []byte("070702")},
	{"gzip", []byte{0x1f, 0x8b}},
	{"zstd", []byte{0x28, 0xb5, 0x2f, 0xfd}},
	{"xz", []byte{0xfd, '7', 'z', 'X', 'Z', 0}},
	{"lzma", []byte{0x5d, 0, 0}},
	{"bzip2", []byte("BZh")},
	{"lz4", []byte{0x02, 0x21, 0x4c, 0x18}},
	{"lzo", []byte{0x89, 'L', 'Z', 'O'}},
}

// InitrdFormat names the format of an initrd from its first bytes, or
// returns "".
func InitrdFormat(head []byte) string {
	for _, m := range initrdMagics {
		if bytes.HasPrefix(head, m.magic) {
			return m.format
		}
	}
	return ""
}

// initrd checks the initrd and returns its size (0 without one).
func (s system) initrd() (int64, control.KexecCheck) {
	const name = "initrd"
	if s.o.Initrd == "" {
		return 0, pass(name, "none given")
	}
	f, fi, err := openRegular(s.o.Initrd)
	if err != nil {
		return 0, fail(name, "%v", err)
	}
	defer f.Close()
	if fi.Size() == 0 {
		return 0, fail(name, "%s is empty", s.o.Initrd)
	}
	head := make([]byte, 8)
	n, err := f.ReadAt(head, 0)
	if n == 0 {
		return 0, fail(name, "read %s: %v", s.o.Initrd, err)
	}
	format := InitrdFormat(head[:n])
	if format == "" {
		return 0, fail(name, "%s is not a cpio archive nor a compressed one (starts with % x)", s.o.Initrd, head[:n])
	}
	return fi.Size(), pass(name, "%s, %d bytes", format, fi.Size())
}

// cmdline checks the command line the new kernel would get: --append, or
// the running kernel's own.
func (s system) cmdline(h *Header) (string, control.KexecCheck) {
	const name = "cmdline"
	line, from := s.o.Append, "--append"
	if line == "" {
		data, err := os.ReadFile(filepath.Join(s.o.ProcDir, "cmdline"))
		if err != nil {
			return "", fail(name, "no --append and the running command line is unreadable: %v", err)
		}
		line, from = strings.TrimSpace(string(data)), "the running kernel's"
	}
	limit, why := uint32(defaultCmdlineSize), "the default limit"
	if h != nil {
		limit, why = h.CmdlineSize, "the kernel's cmdline_size"
	}
	if uint32(len(line)) > limit {
		return line, fail(name, "%s command line is %d bytes, longer than %s (%d)", from, len(line), why, limit)
	}
	return line, pass(name, "%s, %d bytes (at most %d)", from, len(line), limit)
}

// privileges checks that this process holds CAP_SYS_BOOT, which both
// kexec_file_load and reboot(LINUX_REBOOT_CMD_KEXEC) require.
func (s system) privileges() control.KexecCheck {
	const name = "privileges"
	status, err := os.ReadFile(filepath.Join(s.o.ProcDir, "self/status"))
	if err != nil {
		return fail(name, "%v", err)
	}
	has, err := HasCapability(status, capSysBoot)
	if err != nil {
		return fail(name, "%v", err)
	}
	if !has {
		return fail(name, "CAP_SYS_BOOT is not in the effective set (uid %d): kexec_file_load and reboot would fail with EPERM", os.Geteuid())
	}
	return pass(name, "CAP_SYS_BOOT held (uid %d)", os.Geteuid())
}

// HasCapability reads the CapEff line of a /proc/<pid>/status file.
func HasCapability(status []byte, capability uint) (bool, error) {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		v, ok := strings.CutPrefix(sc.Text(), "CapEff:")
		if !ok {
			continue
		}
		mask, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		if err != nil {
			return false, fmt.Errorf("CapEff %q: %w", strings.TrimSpace(v), err)
		}
		return mask&(1<<capability) != 0, nil
	}
	return false, errors.New("no CapEff line in status")
}

// stateDir checks that the state directory exists and is a directory.
func (s system) stateDir() (bool, control.KexecCheck) {
	const name = "state-dir"
	fi, err := os.Stat(s.o.StateDir)
	switch {
	case err != nil:
		return false, fail(name, "%v", err)
	case !fi.IsDir():
		return false, fail(name, "%s is not a directory", s.o.StateDir)
	}
	return true, pass(name, "%s is a directory", s.o.StateDir)
}

// writeProbe creates, writes, syncs and removes a file in the state dir,
// as the pre-kexec info and the manifest will be.
func (s system) writeProbe(dirOK bool) control.KexecCheck {
	const name = "write-probe"
	if !dirOK {
		return skip(name, "no state directory")
	}
	if err := WriteProbe(s.o.StateDir); err != nil {
		return fail(name, "%v", err)
	}
	return pass(name, "created, wrote, synced and removed a file in %s", s.o.StateDir)
}

// WriteProbe creates a file in dir, writes to it, syncs it and removes it.
func WriteProbe(dir string) error {
	f, err := os.CreateTemp(dir, ".kexec-probe-*")
	if err != nil {
		return fmt.Errorf("create probe file: %w", err)
	}
	defer os.Remove(f.Name())
	_, werr := f.WriteString("kexec dry-run probe\n")
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		return fmt.Errorf("write probe file %s: %w", f.Name(), err)
	}
	if err := os.Remove(f.Name()); err != nil {
		return fmt.Errorf("remove probe file: %w", err)
	}
	return nil
}

// freeSpace checks that the state dir's file system can hold the
// checkpoints of the running services.
func (s system) freeSpace(dirOK bool) control.KexecCheck {
	const name = "free-space"
	if !dirOK {
		return skip(name, "no state directory")
	}
	var st unix.Statfs_t
	if err := unix.Statfs(s.o.StateDir, &st); err != nil {
		return fail(name, "statfs %s: %v", s.o.StateDir, err)
	}
	free := int64(st.Bavail) * st.Bsize
	need := s.o.CheckpointBytes + loadOverhead
	if free < need {
		return fail(name, "%d MiB free in %s, checkpoints need about %d MiB", free>>20, s.o.StateDir, (need+1<<20-1)>>20)
	}
	return pass(name, "%d MiB free in %s, checkpoints need about %d MiB", free>>20, s.o.StateDir, (need+1<<20-1)>>20)
}

// persistent checks that the state dir survives the kexec: a tmpfs or
// ramfs is emptied by it (the reference kept its checkpoints on one).
func (s system) persistent(dirOK bool) control.KexecCheck {
	const name = "persistent"
	if !dirOK {
		return skip(name, "no state directory")
	}
	var st unix.Statfs_t
	if err := unix.Statfs(s.o.StateDir, &st); err != nil {
		return fail(name, "statfs %s: %v", s.o.StateDir, err)
	}
	switch st.Type {
	case unix.TMPFS_MAGIC, unix.RAMFS_MAGIC:
		return fail(name, "%s is on a file system in memory (statfs type %#x): the manifest would not survive the kexec", s.o.StateDir, st.Type)
	}
	return pass(name, "%s is on a persistent file system (statfs type %#x)", s.o.StateDir, st.Type)
}

var criuVersion = regexp.MustCompile(`(?m)^Version: (\d+)\.(\d+)`)

// criu finds criu and checks its version (the checkpoints need ≥ 3).
func (s system) criu(ctx context.Context) (string, control.KexecCheck) {
	const name = "criu"
	bin := s.o.CRIU
	if bin == "" {
		var err error
		if bin, err = lookCRIU(); err != nil {
			return "", fail(name, "CRIU is missing: %v: services cannot be checkpointed", err)
		}
	} else if _, err := os.Stat(bin); err != nil {
		return "", fail(name, "CRIU is missing: %v", err)
	}
	out, err := runCRIU(ctx, bin, "--version")
	m := criuVersion.FindStringSubmatch(out)
	if m == nil {
		return "", fail(name, "%s --version: no version in its output (%v): %q", bin, err, firstLine(out))
	}
	if major, _ := strconv.Atoi(m[1]); major < 3 {
		return "", fail(name, "%s is version %s.%s; at least 3 is needed", bin, m[1], m[2])
	}
	return bin, pass(name, "%s, version %s.%s", bin, m[1], m[2])
}

// defaultPath is searched when $PATH is empty: the kernel starts PID 1
// without one.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// lookCRIU finds criu in $PATH, or in defaultPath when $PATH is unset.
func lookCRIU() (string, error) {
	dirs := os.Getenv("PATH")
	if dirs == "" {
		dirs = defaultPath
	}
	for _, d := range filepath.SplitList(dirs) {
		p := filepath.Join(d, "criu")
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("no executable criu in %s", dirs)
}

// criuCheck runs `criu check`: whether this kernel has what CRIU needs to
// dump services and restore them.
func (s system) criuCheck(ctx context.Context, bin string) control.KexecCheck {
	const name = "criu-check"
	if bin == "" {
		return skip(name, "no usable criu")
	}
	out, err := runCRIU(ctx, bin, "check")
	if !strings.Contains(out, "Looks good.") {
		return fail(name, "criu check did not say \"Looks good.\" (%v): %s", err, lastLine(out))
	}
	return pass(name, "criu check: Looks good.")
}

// runCRIU runs criu with args and returns what it printed on stdout and
// stderr. The verdict is the output: in PID 1 the event loop reaps every
// child with wait4(-1), so the exit status may be gone (ECHILD) by the time
// Wait asks for it.
func runCRIU(ctx context.Context, bin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, criuTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	if errors.Is(err, syscall.ECHILD) {
		err = nil
	}
	return out.String(), err
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return l
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	return s[strings.LastIndexByte(s, '\n')+1:]
}

// ProbeKexecFileLoad calls kexec_file_load with invalid file descriptors.
// A kernel with the syscall answers EBADF without touching anything (a
// loaded kernel stays loaded: only KEXEC_FILE_UNLOAD or a successful load
// replaces it); one without it ENOSYS; EPERM means no CAP_SYS_BOOT or
// kexec_load_disabled.
func ProbeKexecFileLoad() error {
	return unix.KexecFileLoad(-1, -1, "", 0)
}

// kexecFileLoad interprets the probe.
func (s system) kexecFileLoad() control.KexecCheck {
	const name = "kexec-file-load"
	err := s.o.KexecProbe()
	switch {
	case errors.Is(err, unix.EBADF):
		return pass(name, "the syscall exists (probe with invalid fds: EBADF)")
	case errors.Is(err, unix.ENOSYS):
		return fail(name, "this kernel has no kexec_file_load (ENOSYS: built without CONFIG_KEXEC_FILE)")
	case errors.Is(err, unix.EPERM):
		return fail(name, "kexec_file_load is not permitted (EPERM: no CAP_SYS_BOOT, kexec_load_disabled, or a seccomp filter)")
	case err == nil:
		return fail(name, "the probe with invalid fds succeeded, which no kernel should allow")
	}
	return fail(name, "unexpected answer to the probe: %v", err)
}

// loadEnabled reads kernel.kexec_load_disabled (once set, it stays set
// until reboot).
func (s system) loadEnabled() control.KexecCheck {
	const name = "load-enabled"
	p := filepath.Join(s.o.ProcDir, "sys/kernel/kexec_load_disabled")
	data, err := os.ReadFile(p)
	if err != nil {
		return fail(name, "%v (a kernel built without kexec has no such file)", err)
	}
	if v := strings.TrimSpace(string(data)); v != "0" {
		return fail(name, "kernel.kexec_load_disabled is %s: loading is off until the next boot", v)
	}
	return pass(name, "kernel.kexec_load_disabled is 0")
}

// lockdown: under lockdown the Debian kernel's signature check is enforced
// and the load fails with EPERM (platform facts §5); without it the ENOKEY
// of the check is tolerated.
func (s system) lockdown() control.KexecCheck {
	const name = "lockdown"
	data, err := os.ReadFile(filepath.Join(s.o.SysDir, "kernel/security/lockdown"))
	if errors.Is(err, os.ErrNotExist) {
		return pass(name, "no lockdown LSM: the kernel signature is not enforced")
	}
	if err != nil {
		return fail(name, "%v", err)
	}
	mode, err := LockdownMode(string(data))
	if err != nil {
		return fail(name, "%v", err)
	}
	if mode != "none" {
		return fail(name, "lockdown is %q: an unsigned or untrusted kernel would be refused (EPERM)", mode)
	}
	return pass(name, "lockdown is none: a failing signature check (ENOKEY) is tolerated")
}

// LockdownMode returns the selected mode of a lockdown file such as
// "[none] integrity confidentiality".
func LockdownMode(s string) (string, error) {
	for _, w := range strings.Fields(s) {
		if m, ok := strings.CutPrefix(w, "["); ok {
			if m, ok = strings.CutSuffix(m, "]"); ok {
				return m, nil
			}
		}
	}
	return "", fmt.Errorf("no selected mode in lockdown %q", strings.TrimSpace(s))
}

// memory checks that the loaded pieces fit: they must fit in half of RAM
// (measured: 52 MiB + initrd fails on a 128 MB guest with EINVAL), and the
// load holds the files and the segments in memory at once.
func (s system) memory(h *Header, initrd int64) control.KexecCheck {
	const name = "memory"
	if h == nil {
		return skip(name, "needs a valid kernel")
	}
	data, err := os.ReadFile(filepath.Join(s.o.ProcDir, "meminfo"))
	if err != nil {
		return fail(name, "%v", err)
	}
	mi, err := ParseMeminfo(data)
	if err != nil {
		return fail(name, "%v", err)
	}
	return MemoryVerdict(h.LoadSize(), h.FileSize, initrd, mi)
}

// Meminfo is what the memory check reads from /proc/meminfo, in bytes.
type Meminfo struct{ Total, Available int64 }

// ParseMeminfo reads MemTotal and MemAvailable.
func ParseMeminfo(data []byte) (Meminfo, error) {
	var m Meminfo
	found := 0
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || (f[0] != "MemTotal:" && f[0] != "MemAvailable:") {
			continue
		}
		kb, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			return m, fmt.Errorf("meminfo %s: %w", f[0], err)
		}
		if f[0] == "MemTotal:" {
			m.Total = kb << 10
		} else {
			m.Available = kb << 10
		}
		found++
	}
	if found != 2 {
		return m, errors.New("meminfo lacks MemTotal or MemAvailable")
	}
	return m, nil
}

// MemoryVerdict judges whether a kernel needing loadSize bytes once loaded,
// from a file of kernelFile bytes, with an initrd of initrd bytes, can be
// loaded on a machine with mi.
func MemoryVerdict(loadSize, kernelFile, initrd int64, mi Meminfo) control.KexecCheck {
	const name = "memory"
	need := loadSize + initrd + loadOverhead
	mib := func(n int64) int64 { return (n + 1<<20 - 1) >> 20 }
	if 2*need > mi.Total {
		return fail(name, "kernel %d MiB + initrd %d MiB + %d MiB must fit in half of RAM (%d of %d MiB)",
			mib(loadSize), mib(initrd), loadOverhead>>20, mi.Total>>21, mi.Total>>20)
	}
	if peak := need + kernelFile + initrd; peak > mi.Available {
		return fail(name, "the load needs about %d MiB (segments and file copies), %d MiB available", mib(peak), mi.Available>>20)
	}
	return pass(name, "%d MiB to load, half of RAM is %d MiB, %d MiB available", mib(need), mi.Total>>21, mi.Available>>20)
}

// rebootKexec checks that the kernel can reboot into a loaded kernel
// (CONFIG_KEXEC_CORE shows /sys/kernel/kexec_loaded) and says whether one
// is loaded already (the load would replace it).
func (s system) rebootKexec() control.KexecCheck {
	const name = "reboot-kexec"
	data, err := os.ReadFile(filepath.Join(s.o.SysDir, "kernel/kexec_loaded"))
	if err != nil {
		return fail(name, "%v: this kernel cannot reboot with LINUX_REBOOT_CMD_KEXEC", err)
	}
	if strings.TrimSpace(string(data)) == "1" {
		return pass(name, "supported; a kernel is loaded already and would be replaced")
	}
	return pass(name, "supported (/sys/kernel/kexec_loaded exists, nothing loaded)")
}
