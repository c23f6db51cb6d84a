// Package machine is what PID 1 does to the machine itself: mount the kernel
// filesystems at boot, and at the end flush, unmount and power off or reboot.
// Everything here is for PID 1 only; the resolver skips it in test mode.
package machine

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

type mount struct {
	source, target, fstype string
	flags                  uintptr
	data                   string // filesystem options that have no mount flag
}

// earlyMounts are the kernel filesystems in mount order (/dev/pts needs /dev).
var earlyMounts = []mount{
	{"proc", "/proc", "proc", unix.MS_NOSUID | unix.MS_NOEXEC | unix.MS_NODEV, ""},
	{"sysfs", "/sys", "sysfs", unix.MS_NOSUID | unix.MS_NOEXEC | unix.MS_NODEV, ""},
	{"devtmpfs", "/dev", "devtmpfs", unix.MS_NOSUID, "mode=0755"},
	{"tmpfs", "/run", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=0755"},
	{"devpts", "/dev/pts", "devpts", unix.MS_NOSUID | unix.MS_NOEXEC, "mode=0620,gid=5,ptmxmode=0666"},
}

// MountEarly mounts proc, sysfs, devtmpfs, /run and devpts where nothing is
// mounted yet (the initramfs may have done some of it). Failures are
// returned, not fatal: PID 1 carries on with what it has.
func MountEarly() []error {
	return mountEarly("/")
}

// mountEarly mounts under root, so tests can use a private directory.
func mountEarly(root string) []error {
	var errs []error
	for _, m := range earlyMounts {
		target := filepath.Join(root, m.target)
		if err := os.MkdirAll(target, 0o755); err != nil {
			errs = append(errs, fmt.Errorf("mount %s: %w", target, err))
			continue
		}
		mounted, err := isMountPoint(target)
		if err != nil {
			errs = append(errs, fmt.Errorf("mount %s: %w", target, err))
			continue
		}
		if mounted {
			continue
		}
		if err := unix.Mount(m.source, target, m.fstype, m.flags, m.data); err != nil {
			errs = append(errs, fmt.Errorf("mount %s on %s: %w", m.fstype, target, err))
		}
	}
	return errs
}

// isMountPoint reports whether dir is on another filesystem than its parent.
// It needs no /proc, which may be the very thing about to be mounted.
func isMountPoint(dir string) (bool, error) {
	var self, parent unix.Stat_t
	if err := unix.Lstat(dir, &self); err != nil {
		return false, fmt.Errorf("stat %s: %w", dir, err)
	}
	if err := unix.Lstat(filepath.Join(dir, ".."), &parent); err != nil {
		return false, fmt.Errorf("stat %s/..: %w", dir, err)
	}
	return self.Dev != parent.Dev || self.Ino == parent.Ino, nil
}

// initialPIDNamespaceIno is the inode number of the kernel's first PID
// namespace (PROC_PID_INIT_INO in the kernel sources).
const initialPIDNamespaceIno = 0xEFFFFFFC

// UnlimitKmsg lifts the kernel's rate limit on writers to /dev/kmsg, which
// would otherwise drop most of PID 1's boot messages. It only acts for the
// machine's real init: a PID 1 in a container must not change its host.
func UnlimitKmsg() error {
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/ns/pid", &st); err != nil {
		return fmt.Errorf("unlimit /dev/kmsg: %w", err)
	}
	if st.Ino != initialPIDNamespaceIno {
		return nil
	}
	if err := os.WriteFile("/proc/sys/kernel/printk_devkmsg", []byte("on\n"), 0o644); err != nil {
		return fmt.Errorf("unlimit /dev/kmsg: %w", err)
	}
	return nil
}

// DisableCtrlAltDel makes the kernel send SIGINT to PID 1 on Ctrl-Alt-Del
// instead of rebooting on the spot.
func DisableCtrlAltDel() error {
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_CAD_OFF); err != nil {
		return fmt.Errorf("disable ctrl-alt-del: %w", err)
	}
	return nil
}

// Teardown flushes and detaches the real filesystems before the power goes:
// everything in /proc/self/mounts except /, the kernel filesystems and /run is
// unmounted (deepest first), or remounted read-only if it is busy; then / is
// remounted read-only. Only PID 1 may call it, after every process is gone.
func Teardown() []error {
	syscall.Sync()
	table, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return []error{fmt.Errorf("teardown: %w", err)}
	}
	var errs []error
	for _, target := range unmountTargets(string(table)) {
		if err := unix.Unmount(target, 0); err == nil {
			continue
		} else if rerr := unix.Mount("", target, "", unix.MS_REMOUNT|unix.MS_RDONLY, ""); rerr != nil {
			errs = append(errs, fmt.Errorf("unmount %s: %w; remount read-only: %w", target, err, rerr))
		}
	}
	if err := unix.Mount("", "/", "", unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
		errs = append(errs, fmt.Errorf("remount / read-only: %w", err))
	}
	syscall.Sync()
	return errs
}

// unmountTargets lists, from the text of /proc/self/mounts, the mount points
// Teardown unmounts, in reverse mount order so nested mounts go first.
func unmountTargets(table string) []string {
	var targets []string
	for _, line := range strings.Split(table, "\n") {
		fields := strings.Fields(line)
		if len(fields) < 2 {
			continue
		}
		target := unescapeMount(fields[1])
		if keepMounted(target) {
			continue
		}
		targets = append(targets, target)
	}
	for i, j := 0, len(targets)-1; i < j; i, j = i+1, j-1 {
		targets[i], targets[j] = targets[j], targets[i]
	}
	return targets
}

// keepMounted is true for / and the kernel's own filesystems, which hold no
// data to flush and which the rest of the shutdown still needs.
func keepMounted(target string) bool {
	if target == "/" || target == "/run" {
		return true
	}
	for _, dir := range []string{"/proc", "/sys", "/dev"} {
		if target == dir || strings.HasPrefix(target, dir+"/") {
			return true
		}
	}
	return false
}

// unescapeMount undoes the octal escapes (\040 for space) of /proc/self/mounts.
func unescapeMount(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// Action is how the machine ends.
type Action int

// Actions.
const (
	PowerOff Action = iota
	Reboot
)

func (a Action) String() string {
	if a == Reboot {
		return "reboot"
	}
	return "poweroff"
}

// Halt powers off or reboots; it returns only if the kernel refused.
func Halt(a Action) error {
	cmd := unix.LINUX_REBOOT_CMD_POWER_OFF
	if a == Reboot {
		cmd = unix.LINUX_REBOOT_CMD_RESTART
	}
	return fmt.Errorf("%v: %w", a, unix.Reboot(cmd))
}
