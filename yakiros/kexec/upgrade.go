package kexec

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"yakimg/internal/atomicfile"
)

// PreKexecInfoFile is the reference's record of the kernel being left.
const PreKexecInfoFile = "pre-kexec-info.txt"

// minFree is what the state directory must keep free for the manifest
// once the checkpoints are written; less counts as a full file system.
const minFree = 1 << 20

// ErrNoSpace marks an upgrade abandoned because the state directory is
// full (or would be): checkpoints of all services, or the manifest, do not
// fit.
var ErrNoSpace = errors.New("no room for the checkpoints")

// Service is a running service a live upgrade checkpoints.
type Service struct {
	Name string
	Pid  int
	// Skip, when set, says why the service is not checkpointed; it starts
	// fresh in the next boot.
	Skip string
}

// Dumped is a checkpoint the upgrade took. Its processes are left
// stopped: they run on only if the upgrade is abandoned (Resume).
type Dumped struct {
	Name      string
	Pid       int
	ID        string // the checkpoint id
	Path      string // its directory
	Timestamp int64  // Unix seconds
	FrozenNS  int64  // wall clock (Unix ns) when the dump began and stopped it
}

// Plan is a live kernel upgrade whose dry run passed.
type Plan struct {
	StateDir  string
	Kernel    string
	Initrd    string // "" for none
	Cmdline   string
	OldKernel string // the running kernel's release
	BootID    string // the running boot's id
	Services  []Service
	// NeedBytes is what the checkpoints will take (the services'
	// anonymous resident memory): less free space abandons the upgrade
	// before anything is dumped.
	NeedBytes int64
	// Dump checkpoints s into the state directory and leaves its
	// processes stopped; when it fails they run on.
	Dump func(ctx context.Context, s Service) (Dumped, error)
	// Verify checks a checkpoint's images once all are taken.
	Verify func(Dumped) error
	// Load loads the new kernel (LoadFile).
	Load func(kernel, initrd, cmdline string) error
	// ProcDir is /proc unless set (for ns_last_pid).
	ProcDir string
}

// Prepared is an upgrade ready to execute: the kernel is loaded and the
// manifest is on disk.
type Prepared struct {
	Manifest Manifest
	// Dumped are the checkpointed services, stopped. On an error they are
	// the ones the caller must Resume (their images are already removed).
	Dumped []Dumped
	LoadMS float64
}

// Prepare runs phases 2 to 6 of a live kernel upgrade (docs/KEXEC.md):
// pre-kexec info, checkpoints of every service (in the order given,
// which is the order of their restore), their validation, the manifest,
// and the kernel load. A service that cannot be checkpointed is listed to
// start fresh; a state directory that is full, a checkpoint that fails
// validation, a manifest that cannot be written or a kernel that does not
// load abandons the upgrade: Prepare removes what it wrote and returns the
// stopped services for the caller to resume. It runs criu and syncs
// files: never on an event loop.
func Prepare(ctx context.Context, p Plan) (Prepared, error) {
	if p.ProcDir == "" {
		p.ProcDir = "/proc"
	}
	var out Prepared
	// abandon removes what the upgrade wrote and says in which phase it
	// stopped; a full state directory is named as such.
	abandon := func(phase string, err error) (Prepared, error) {
		for _, d := range out.Dumped {
			os.RemoveAll(d.Path)
		}
		RemoveManifest(p.StateDir)
		if !errors.Is(err, ErrNoSpace) && phase != PhaseLoadKernel && full(err, p.StateDir) {
			err = fmt.Errorf("%w: %w", ErrNoSpace, err)
		}
		return out, fmt.Errorf("%s: %w", phase, err)
	}
	start := time.Now()
	if err := writePreKexecInfo(p, start); err != nil {
		return abandon(PhasePreKexecInfo, err)
	}
	if err := enoughRoom(p.StateDir, p.NeedBytes); err != nil {
		return abandon(PhaseCheckpoint, err)
	}
	m := Manifest{CreationTime: start.Unix(), OldKernelVersion: p.OldKernel, NewKernelPath: p.Kernel,
		InitrdPath: p.Initrd, Cmdline: p.Cmdline, BootID: p.BootID, Entries: []Entry{}, Fresh: []Skipped{}}
	for _, s := range p.Services {
		if s.Skip != "" {
			m.Fresh = append(m.Fresh, Skipped{ComponentName: s.Name, Reason: s.Skip})
			continue
		}
		if err := ctx.Err(); err != nil {
			return abandon(PhaseCheckpoint, err)
		}
		d, err := p.Dump(ctx, s)
		if err != nil {
			if full(err, p.StateDir) {
				return abandon(PhaseCheckpoint, fmt.Errorf("'%s': %w: %w", s.Name, ErrNoSpace, err))
			}
			m.Fresh = append(m.Fresh, Skipped{ComponentName: s.Name, Reason: "checkpoint failed: " + err.Error()})
			continue
		}
		out.Dumped = append(out.Dumped, d)
		m.Entries = append(m.Entries, Entry{ComponentName: d.Name, CheckpointID: d.ID, CheckpointPath: d.Path,
			OriginalPid: d.Pid, Timestamp: d.Timestamp, RestorePriority: len(m.Entries), FrozenNS: d.FrozenNS})
	}
	for _, d := range out.Dumped {
		if err := p.Verify(d); err != nil {
			return abandon(PhaseValidateCheckpoints, err)
		}
	}
	last, err := LastPid(p.ProcDir)
	if err != nil {
		return abandon(PhasePersistManifest, err)
	}
	m.LastPid = last
	m.CheckpointMS = msSince(start)
	if err := WriteManifest(p.StateDir, m); err != nil {
		return abandon(PhasePersistManifest, err)
	}
	syscall.Sync()
	m.Version, m.EntryCount = ManifestVersion, len(m.Entries)
	out.Manifest = m
	t := time.Now()
	if err := p.Load(p.Kernel, p.Initrd, p.Cmdline); err != nil {
		return abandon(PhaseLoadKernel, err)
	}
	out.LoadMS = msSince(t)
	return out, nil
}

func msSince(t time.Time) float64 { return float64(time.Since(t).Microseconds()) / 1000 }

// enoughRoom fails with ErrNoSpace when dir's file system has less than
// need plus minFree available.
func enoughRoom(dir string, need int64) error {
	free, err := freeBytes(dir)
	if err != nil {
		return err
	}
	if free < need+minFree {
		return fmt.Errorf("%w: %d MiB free in %s, the checkpoints need about %d MiB", ErrNoSpace, free>>20, dir, (need+minFree+1<<20-1)>>20)
	}
	return nil
}

func freeBytes(dir string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", dir, err)
	}
	return int64(st.Bavail) * st.Bsize, nil
}

// full tells whether err came from a full state directory: ENOSPC, criu
// saying so in its log, or less than minFree left.
func full(err error, dir string) bool {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) || strings.Contains(err.Error(), "No space left") {
		return true
	}
	free, serr := freeBytes(dir)
	return serr == nil && free < minFree
}

// writePreKexecInfo writes the reference's key=value record of the kernel
// being left (yakiros-reference §12.2).
func writePreKexecInfo(p Plan, now time.Time) error {
	host, _ := os.Hostname()
	var b strings.Builder
	for _, kv := range [][2]string{
		{"old_kernel_version", p.OldKernel},
		{"kexec_timestamp", strconv.FormatInt(now.Unix(), 10)},
		{"kexec_date", now.UTC().Format(time.RFC3339)},
		{"hostname", host},
		{"architecture", runtime.GOARCH},
		{"component_count", strconv.Itoa(len(p.Services))},
		{"new_kernel_path", p.Kernel},
		{"boot_id", p.BootID},
	} {
		fmt.Fprintf(&b, "%s=%s\n", kv[0], kv[1])
	}
	return atomicfile.WriteDurable(filepath.Join(p.StateDir, PreKexecInfoFile), []byte(b.String()))
}

// LastPid reads the kernel's last allocated pid (ns_last_pid).
func LastPid(procDir string) (int, error) {
	b, err := os.ReadFile(filepath.Join(procDir, "sys/kernel/ns_last_pid"))
	if err != nil {
		return 0, fmt.Errorf("read last pid: %w", err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("read last pid: %w", err)
	}
	return n, nil
}

// ReservePids moves the kernel's pid counter to last if it is lower, so
// that no process forked from now on takes a pid at or below last: the
// pids a restore needs stay free. It returns the counter it found.
func ReservePids(procDir string, last int) (int, error) {
	cur, err := LastPid(procDir)
	if err != nil || cur >= last {
		return cur, err
	}
	if err := os.WriteFile(filepath.Join(procDir, "sys/kernel/ns_last_pid"), []byte(strconv.Itoa(last)), 0); err != nil {
		return cur, fmt.Errorf("reserve pids up to %d: %w", last, err)
	}
	return cur, nil
}

// Resume lets stopped processes run on: an upgrade that is abandoned
// after its checkpoints continues every service where it stood.
func Resume(ds []Dumped) {
	for _, d := range ds {
		// The component's process group (a session leader's pid is its
		// group's), and the process itself should it have left it.
		unix.Kill(-d.Pid, unix.SIGCONT)
		unix.Kill(d.Pid, unix.SIGCONT)
	}
}

// LoadFile loads kernel, initrd ("" for none) and cmdline with
// kexec_file_load, ready for Execute.
func LoadFile(kernel, initrd, cmdline string) error {
	k, err := os.Open(kernel)
	if err != nil {
		return fmt.Errorf("load kernel: %w", err)
	}
	defer k.Close()
	initrdFd, flags := -1, unix.KEXEC_FILE_NO_INITRAMFS
	if initrd != "" {
		f, err := os.Open(initrd)
		if err != nil {
			return fmt.Errorf("load initrd: %w", err)
		}
		defer f.Close()
		initrdFd, flags = int(f.Fd()), 0
	}
	if err := unix.KexecFileLoad(int(k.Fd()), initrdFd, cmdline, flags); err != nil {
		return fmt.Errorf("kexec_file_load %s: %w", kernel, err)
	}
	return nil
}

// Unload drops a loaded kernel, after an upgrade that did not execute.
func Unload() error {
	if err := unix.KexecFileLoad(-1, -1, "", unix.KEXEC_FILE_UNLOAD); err != nil {
		return fmt.Errorf("kexec unload: %w", err)
	}
	return nil
}

// Execute syncs the file systems and reboots into the loaded kernel. It
// returns only if the kernel refused.
func Execute() error {
	syscall.Sync()
	return fmt.Errorf("reboot into the loaded kernel: %w", unix.Reboot(unix.LINUX_REBOOT_CMD_KEXEC))
}
