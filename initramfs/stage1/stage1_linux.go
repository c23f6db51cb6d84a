package stage1

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"
	"yakimg/internal/loopback"

	"github.com/u-root/u-root/pkg/kmodule"
	"github.com/u-root/u-root/pkg/mount"
	"golang.org/x/sys/unix"

	"yakimg/suites/report"
)

const (
	newRoot        = "/newroot"
	checkpointDir  = "/checkpoint"
	defaultChannel = "/dev/ttyS1"
	// deviceWait bounds the wait for the disk's partitions; under TCG they
	// appear within tens of milliseconds of virtio_blk loading.
	deviceWait = 10 * time.Second
	// diagLimit caps the diagnostics of a sentinel frame.
	diagLimit = 4 << 10
)

// Main is stage 1 as PID 1 in the initramfs. It returns only when it is
// not PID 1: as PID 1 it either execs the init of the new root or reports
// the failure on the channel and powers off, because PID 1 returning would
// panic the kernel and a kernel panic must mean a real panic.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if os.Getpid() != 1 {
		fmt.Fprintln(stderr, "yakimg-runner: stage 1 runs only as PID 1 of the initramfs; refusing to remount this system")
		return 2
	}
	s := &stage1{log: &console{w: stdout}, stdout: stdout, stderr: stderr}
	defer func() {
		if r := recover(); r != nil {
			s.fail(fmt.Errorf("panic: %v\n%s", r, debug.Stack()))
		}
	}()
	s.fail(s.boot(ctx))
	return 1
}

type stage1 struct {
	log            *console
	stdout, stderr io.Writer
	channel        *os.File // the report channel, open from the moment the config is read
}

// boot runs every step up to the exec of the new init; it returns only
// with the error that stopped it.
func (s *stage1) boot(ctx context.Context) error {
	if err := mountKernelFS(); err != nil {
		return err
	}
	s.log.printf("mounted /dev, /proc, /sys")
	// Where KASLR put the kernel: with it, the instruction pointers the
	// host dumps from a hung guest can be looked up in System.map.
	if text, err := kernelText("/proc/kallsyms"); err == nil {
		s.log.printf("kernel text at %#x", text)
	}

	cfg, err := loadConfig("/"+ConfigPath, "/proc/cmdline")
	if err != nil {
		return err
	}
	if s.channel, err = report.OpenSerial(cfg.Channel); err != nil {
		return err
	}
	s.log.printf("config: root=%s checkpoint=%s init=%s deadline=%ds channel=%s",
		cfg.Root, cfg.Checkpoint, cfg.Init, cfg.DeadlineS, cfg.Channel)

	start := time.Now()
	loaded, present, err := loadModules(cfg.Modules)
	if err != nil {
		return err
	}
	s.log.printf("loaded %d modules (%d already present) in %d ms: %s",
		len(cfg.Modules), present, ms(time.Since(start)), strings.Join(loaded, " "))

	if err := loopback.Up(); err != nil {
		return err
	}
	s.log.printf("lo is up")

	start = time.Now()
	devices := []string{cfg.Root}
	if cfg.Checkpoint != "" {
		devices = append(devices, cfg.Checkpoint)
	}
	if err := waitBlockDevices(ctx, devices, deviceWait); err != nil {
		return err
	}
	s.log.printf("found %s after %d ms", strings.Join(devices, ", "), ms(time.Since(start)))

	start = time.Now()
	if err := mountAt(cfg.Root, newRoot, "ext4", 0, ""); err != nil {
		return err
	}
	s.log.printf("mounted %s on / (ext4, rw) in %d ms", cfg.Root, ms(time.Since(start)))
	if cfg.Checkpoint != "" {
		start = time.Now()
		if err := mountAt(cfg.Checkpoint, newRoot+checkpointDir, "ext4", 0, ""); err != nil {
			return err
		}
		s.log.printf("mounted %s on %s (ext4, rw) in %d ms", cfg.Checkpoint, checkpointDir, ms(time.Since(start)))
	}

	pid, err := s.startSentinel(cfg)
	if err != nil {
		return err
	}
	s.log.printf("started sentinel pid %d (fires at %d s since boot)", pid, cfg.DeadlineS)

	oldRoot, err := switchRoot(newRoot, cfg.Init)
	if err != nil {
		return err
	}
	freed, err := freeInitramfs(oldRoot)
	oldRoot.Close()
	if err != nil {
		// Only memory is lost; the boot goes on.
		s.log.printf("switched root to %s; freeing the initramfs stopped after %d entries: %v", cfg.Root, freed, err)
	} else {
		s.log.printf("switched root to %s; freed %d initramfs entries", cfg.Root, freed)
	}

	s.log.printf("exec %s as PID 1", cfg.Init)
	err = unix.Exec(cfg.Init, []string{path.Base(cfg.Init)}, os.Environ())
	return fmt.Errorf("exec %s: %w", cfg.Init, err)
}

// fail reports err on the console and the channel, then powers off. It
// never returns.
func (s *stage1) fail(err error) {
	s.log.printf("FAILED: %v", err)
	if s.channel == nil {
		// The config may be what failed; the channel is where the builder
		// always puts it.
		s.channel, _ = report.OpenSerial(defaultChannel)
	}
	if s.channel != nil {
		frame := report.Sentinel{
			Reason:      "stage1: " + err.Error(),
			UptimeS:     int64(sinceBoot().Seconds()),
			Diagnostics: capText(s.log.text(), diagLimit),
		}
		if werr := report.NewWriter(s.channel).Sentinel(frame); werr != nil {
			s.log.printf("cannot report the failure: %v", werr)
		}
	} else {
		s.log.printf("cannot report the failure: no report channel")
	}
	unix.Sync()
	s.log.printf("powering off")
	perr := unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	s.log.printf("power off failed: %v; halting", perr)
	for {
		time.Sleep(time.Hour)
	}
}

// console writes stage 1's one-line progress messages, stamped with the
// time since the kernel started, and keeps them for a failure report.
type console struct {
	w     io.Writer
	lines strings.Builder
}

func (c *console) printf(format string, args ...any) {
	line := fmt.Sprintf("yakimg-runner: [%d ms] %s\n", ms(sinceBoot()), fmt.Sprintf(format, args...))
	io.WriteString(c.w, line)
	c.lines.WriteString(line)
}

func (c *console) text() string { return c.lines.String() }

func ms(d time.Duration) int64 { return d.Milliseconds() }

// sinceBoot is the guest's uptime: CLOCK_BOOTTIME starts with the kernel.
func sinceBoot() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}

// capText cuts s to at most limit bytes, marking the cut.
func capText(s string, limit int) string {
	const mark = "\n[truncated]"
	if len(s) <= limit {
		return s
	}
	return s[:limit-len(mark)] + mark
}

func mountKernelFS() error {
	for _, m := range []struct {
		fstype, target string
		flags          uintptr
		data           string
	}{
		// The cloud kernel has DEVTMPFS_MOUNT=n: nobody mounts /dev for us.
		{"devtmpfs", "/dev", unix.MS_NOSUID, "mode=0755"},
		{"proc", "/proc", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
		{"sysfs", "/sys", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
	} {
		if err := mountAt(m.fstype, m.target, m.fstype, m.flags, m.data); err != nil {
			return err
		}
	}
	return nil
}

// mountAt mounts source on target, creating target first.
func mountAt(source, target, fstype string, flags uintptr, data string) error {
	if err := os.MkdirAll(target, 0o755); err != nil {
		return fmt.Errorf("mount %s: %w", target, err)
	}
	if _, err := mount.Mount(source, target, fstype, data, flags); err != nil {
		// u-root's error repeats every argument; keep the line short and
		// name the cause (errno) alone.
		var errno unix.Errno
		if errors.As(err, &errno) {
			err = errno
		}
		return fmt.Errorf("mount %s on %s (%s): %w", source, target, fstype, err)
	}
	return nil
}

func loadConfig(configPath, cmdlinePath string) (Config, error) {
	data, err := os.ReadFile(configPath)
	if err != nil {
		return Config{}, fmt.Errorf("read stage1 config: %w", err)
	}
	cfg, err := ParseConfig(data)
	if err != nil {
		return Config{}, err
	}
	cmdline, err := os.ReadFile(cmdlinePath)
	if err != nil {
		return Config{}, fmt.Errorf("read kernel command line: %w", err)
	}
	if cfg, err = withCmdline(cfg, string(cmdline)); err != nil {
		return Config{}, err
	}
	return cfg, cfg.Validate()
}

// loadModules loads each module in order. A module that is already loaded
// or built in answers EEXIST, which is what we wanted anyway.
func loadModules(paths []string) (names []string, present int, err error) {
	for _, p := range paths {
		p = filepath.Join("/", p)
		f, err := os.Open(p)
		if err != nil {
			return nil, 0, fmt.Errorf("load module: %w", err)
		}
		err = kmodule.FileInit(f, "", 0)
		f.Close()
		switch {
		case errors.Is(err, unix.EEXIST):
			present++
		case err != nil:
			return nil, 0, fmt.Errorf("load module %s: %w", p, err)
		}
		names = append(names, moduleName(p))
	}
	return names, present, nil
}

func moduleName(p string) string {
	name, _, _ := strings.Cut(path.Base(p), ".ko")
	return name
}

// waitBlockDevices polls until every path is a block device: devtmpfs
// creates partition nodes asynchronously after the disk driver loads.
func waitBlockDevices(ctx context.Context, paths []string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		missing := ""
		for _, p := range paths {
			if fi, err := os.Stat(p); err != nil || fi.Mode()&os.ModeDevice == 0 || fi.Mode()&os.ModeCharDevice != 0 {
				missing = p
				break
			}
		}
		if missing == "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("block device %s did not appear within %v (block devices: %s)",
				missing, timeout, blockDevices())
		case <-tick.C:
		}
	}
}

// blockDevices lists what the kernel did find, for the error message.
func blockDevices() string {
	entries, err := os.ReadDir("/sys/class/block")
	if err != nil {
		return err.Error()
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, " ")
}

// startSentinel starts `yakimg-runner sentinel` from this binary. It hands
// over the report channel and a /proc directory descriptor: the sentinel
// keeps the initramfs as its root, where after switch_root neither
// /dev/ttyS1 nor /proc exist any more.
func (s *stage1) startSentinel(cfg Config) (int, error) {
	procDir, err := os.Open("/proc")
	if err != nil {
		return 0, fmt.Errorf("start sentinel: %w", err)
	}
	defer procDir.Close()
	// Go programs refuse to start with a closed standard descriptor.
	null, err := os.Open(os.DevNull)
	if err != nil {
		return 0, fmt.Errorf("start sentinel: %w", err)
	}
	defer null.Close()
	exe, err := os.Executable()
	if err != nil {
		return 0, fmt.Errorf("start sentinel: %w", err)
	}
	args := []string{"yakimg-runner", "sentinel",
		"-deadline", strconv.Itoa(cfg.DeadlineS), "-channel-fd", "3", "-proc-fd", "4"}
	p, err := os.StartProcess(exe, args, &os.ProcAttr{
		Dir:   "/",
		Env:   os.Environ(),
		Files: []*os.File{null, fileOf(s.stdout, null), fileOf(s.stderr, null), s.channel, procDir},
		// Its own session: no console signal reaches it.
		Sys: &syscall.SysProcAttr{Setsid: true},
	})
	if err != nil {
		return 0, fmt.Errorf("start sentinel %s: %w", exe, err)
	}
	pid := p.Pid
	// PID 1 (graph-resolver after the exec) reaps it.
	if err := p.Release(); err != nil {
		return 0, fmt.Errorf("start sentinel: %w", err)
	}
	return pid, nil
}

// fileOf returns w's file for a child's stdio, or else if w is not a file.
func fileOf(w io.Writer, or *os.File) *os.File {
	if f, ok := w.(*os.File); ok {
		return f
	}
	return or
}
