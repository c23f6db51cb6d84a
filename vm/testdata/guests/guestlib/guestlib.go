// Package guestlib holds what the harness test guests share: each guest is
// PID 1 of a tiny initramfs booted by vm's tests.
package guestlib

import (
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"yakimg/suites/report"
)

// Setup mounts devtmpfs on /dev: the cloud kernel does not, and the report
// channel /dev/ttyS1 only exists there. The console (fds 0-2) was opened by
// the kernel from the initramfs's /dev/console before.
func Setup() {
	if err := unix.Mount("devtmpfs", "/dev", "devtmpfs", 0, ""); err != nil && !errors.Is(err, unix.EBUSY) {
		Fatal(fmt.Errorf("mount /dev: %w", err))
	}
}

// Say prints one line on the console.
func Say(format string, args ...any) {
	fmt.Printf("harness guest: "+format+"\n", args...)
}

// Channel opens the report channel.
func Channel() *os.File {
	f, err := report.OpenSerial("/dev/ttyS1")
	if err != nil {
		Fatal(err)
	}
	return f
}

// Drain waits until the UART has sent everything written to f: a write to a
// tty only queues, and powering off would drop what is still queued.
func Drain(f *os.File) {
	if err := unix.IoctlSetInt(int(f.Fd()), unix.TCSBRK, 1); err != nil {
		Say("drain %s: %v", f.Name(), err)
	}
}

// PowerOff stops the machine the way a clean init does.
func PowerOff() {
	unix.Sync()
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF); err != nil {
		Say("power off: %v", err)
	}
	for {
		time.Sleep(time.Hour)
	}
}

// Fatal ends PID 1, which panics the kernel: the host sees it.
func Fatal(err error) {
	Say("fatal: %v", err)
	os.Exit(1)
}

// Uname is the guest's kernel release.
func Uname() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "unknown"
	}
	return unix.ByteSliceToString(u.Release[:])
}
