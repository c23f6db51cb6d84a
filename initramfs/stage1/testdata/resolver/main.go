// Command resolver stands in for /sbin/graph-resolver in the boot test: as
// PID 1 of the new root it prints what stage 1 left behind on one marker
// line, then powers off, or with resolver.hang on the kernel command line
// hangs so that the sentinel has to act.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

func main() {
	cmdline, _ := os.ReadFile("/proc/cmdline")
	mounts, _ := os.ReadFile("/proc/mounts")
	loFlags, _ := os.ReadFile("/sys/class/net/lo/flags")
	var flags uint
	fmt.Sscanf(strings.TrimSpace(string(loFlags)), "0x%x", &flags)
	_, nfErr := os.Stat("/sys/module/nf_tables")
	_, initErr := os.Stat("/init")
	uptime, _ := os.ReadFile("/proc/uptime")

	fmt.Printf("RESOLVER-MARKER pid=%d argv0=%s root=%s checkpoint=%s lo_up=%t nf_tables=%t initramfs_visible=%t sentinel=%t uptime=%s\n",
		os.Getpid(), os.Args[0], fsType(mounts, "/"), fsType(mounts, "/checkpoint"),
		flags&unix.IFF_UP != 0, nfErr == nil, initErr == nil, sentinelAlive(),
		strings.Fields(string(uptime) + " ?")[0])

	if strings.Contains(string(cmdline), "resolver.hang") {
		fmt.Println("RESOLVER-HANGING")
		for {
			time.Sleep(time.Hour)
		}
	}
	unix.Sync()
	unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
}

// fsType is the type of the last file system mounted at dir.
func fsType(mounts []byte, dir string) string {
	t := "none"
	for _, line := range strings.Split(string(mounts), "\n") {
		if f := strings.Fields(line); len(f) > 2 && f[1] == dir {
			t = f[2]
		}
	}
	return t
}

func sentinelAlive() bool {
	comms, _ := filepath.Glob("/proc/[0-9]*/comm")
	for _, c := range comms {
		if b, _ := os.ReadFile(c); strings.TrimSpace(string(b)) == "yakimg-sentinel" {
			return true
		}
	}
	return false
}
