package stage1

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"yakimg/suites/report"
)

// SentinelMain is `yakimg-runner sentinel -deadline N [-channel-fd 3]
// [-proc-fd 4]`; args are those after "sentinel". Stage 1 starts it just
// before switch_root with the report channel and a /proc directory open on
// the given descriptors. It sleeps until the guest has been up for N
// seconds; if it is still alive then, the suites did not finish (a finished
// run powers the machine off first), so it writes a sentinel frame with
// diagnostics, syncs and powers off.
func SentinelMain(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sentinel", flag.ContinueOnError)
	fs.SetOutput(stderr)
	deadline := fs.Int("deadline", 0, "power off when the guest has been up this many `seconds`")
	channelFD := fs.Int("channel-fd", 3, "inherited descriptor of the report channel")
	procFD := fs.Int("proc-fd", 4, "inherited descriptor of the /proc directory")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *deadline <= 0 || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: yakimg-runner sentinel -deadline SECONDS [-channel-fd N] [-proc-fd N]")
		return 2
	}
	// Only stage 1 starts the sentinel, so its parent is PID 1. Anywhere
	// else this would power off the machine it was run on.
	if os.Getppid() != 1 {
		fmt.Fprintln(stderr, "yakimg-runner sentinel: runs only as a child of stage 1 (PID 1); refusing to arm a power-off here")
		return 2
	}
	s := sentinel{
		deadline: time.Duration(*deadline) * time.Second,
		channel:  os.NewFile(uintptr(*channelFD), "report channel"),
		proc:     *procFD,
		log:      stderr,
		uptime:   sinceBoot,
		powerOff: func() error {
			unix.Sync()
			return unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
		},
	}
	return s.run(ctx)
}

type sentinel struct {
	deadline time.Duration
	channel  io.Writer
	proc     int // directory descriptor of a procfs
	log      io.Writer
	uptime   func() time.Duration
	powerOff func() error
}

func (s sentinel) run(ctx context.Context) int {
	// Show up as yakimg-sentinel in process lists, not as the initramfs's "init".
	writeAt(s.proc, "self/comm", "yakimg-sentinel")
	for {
		up := s.uptime()
		if up >= s.deadline {
			break
		}
		t := time.NewTimer(s.deadline - up)
		select {
		case <-ctx.Done():
			t.Stop()
			return 0
		case <-t.C:
		}
	}
	up := s.uptime()
	fmt.Fprintf(s.log, "yakimg-runner sentinel: deadline of %d s passed (up %d s) without the suites finishing; powering off\n",
		int64(s.deadline.Seconds()), int64(up.Seconds()))
	frame := report.Sentinel{
		Reason:      "deadline",
		UptimeS:     int64(up.Seconds()),
		Diagnostics: diagnostics(s.proc, diagLimit),
	}
	if err := report.NewWriter(s.channel).Sentinel(frame); err != nil {
		fmt.Fprintf(s.log, "yakimg-runner sentinel: %v\n", err)
	}
	if err := s.powerOff(); err != nil {
		fmt.Fprintf(s.log, "yakimg-runner sentinel: power off: %v\n", err)
		return 1
	}
	return 0
}

// diagnostics is a compact picture of the guest for a sentinel frame:
// the load average and one "pid comm state" line per user-space process,
// cut at limit bytes. Kernel threads are only counted: they would crowd out
// the processes that matter. It reads procfs through the directory
// descriptor proc.
func diagnostics(proc, limit int) string {
	var b strings.Builder
	if load, err := readAt(proc, "loadavg"); err == nil {
		fmt.Fprintf(&b, "loadavg %s\n", strings.TrimSpace(load))
	} else {
		fmt.Fprintf(&b, "loadavg: %v\n", err)
	}
	pids, err := listPIDs(proc)
	if err != nil {
		fmt.Fprintf(&b, "processes: %v\n", err)
		return capText(b.String(), limit)
	}
	const more = "... %d more processes\n"
	kthreads := 0
	for i, pid := range pids {
		stat, err := readAt(proc, strconv.Itoa(pid)+"/stat")
		if err != nil {
			continue // it exited meanwhile
		}
		line, kernel := statLine(stat)
		if kernel {
			kthreads++
			continue
		}
		if b.Len()+len(line)+len(more)+10 > limit {
			fmt.Fprintf(&b, more, len(pids)-i)
			return capText(b.String(), limit)
		}
		b.WriteString(line)
	}
	fmt.Fprintf(&b, "(%d kernel threads)\n", kthreads)
	return capText(b.String(), limit)
}

// pfKthread is PF_KTHREAD in the flags field of /proc/PID/stat.
const pfKthread = 0x00200000

// statLine turns /proc/PID/stat ("12 (comm) S ppid ... flags ...") into
// "12 comm S" and reports whether the process is a kernel thread. comm may
// itself hold spaces and parentheses; it ends at the last ')'.
func statLine(stat string) (line string, kernel bool) {
	open, end := strings.IndexByte(stat, '('), strings.LastIndexByte(stat, ')')
	if open < 0 || end < open {
		return strings.TrimSpace(stat) + "\n", false
	}
	// After comm: state ppid pgrp session tty_nr tpgid flags ...
	f := strings.Fields(stat[end+1:])
	state := "?"
	if len(f) > 0 {
		state = f[0]
	}
	if len(f) > 6 {
		flags, _ := strconv.ParseUint(f[6], 10, 64)
		kernel = flags&pfKthread != 0
	}
	return fmt.Sprintf("%s %s %s\n", strings.TrimSpace(stat[:open]), stat[open+1:end], state), kernel
}

func listPIDs(proc int) ([]int, error) {
	fd, err := unix.Openat(proc, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	d := os.NewFile(uintptr(fd), "proc")
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, n := range names {
		if pid, err := strconv.Atoi(n); err == nil {
			pids = append(pids, pid)
		}
	}
	slices.Sort(pids)
	return pids, nil
}

func readAt(dirfd int, name string) (string, error) {
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", fmt.Errorf("open %s: %w", name, err)
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 64<<10))
	if err != nil {
		return "", fmt.Errorf("read %s: %w", name, err)
	}
	return string(b), nil
}

// writeAt writes a procfs knob; it is cosmetic, so failures are ignored.
func writeAt(dirfd int, name, value string) {
	fd, err := unix.Openat(dirfd, name, unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	unix.Write(fd, []byte(value))
	unix.Close(fd)
}
