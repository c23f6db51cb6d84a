package isolate

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"yakimg/internal/loopback"

	"golang.org/x/sys/unix"

	"yakimg/yakiros/config"
)

// HelperName is argv[0] of the helper: PID 1's binary started under this
// name runs Helper instead of being init.
const HelperName = "yakiros-isolate-exec"

// HelperFailed is the helper's exit status when it could not set up the
// namespaces; what failed is on its stderr, the component's log.
const HelperFailed = 121

// Wrap returns the path and argv that run binary with args inside iso's
// namespaces: self (PID 1's own binary) as the helper, told what to set
// up, followed by the service. Without namespaces or a root it returns
// binary and args unchanged.
func Wrap(self string, iso config.Isolation, binary string, args []string) (string, []string) {
	root := iso.Root
	if root == "" {
		root = "/"
	}
	if len(iso.Namespaces) == 0 && root == "/" {
		return binary, append([]string{binary}, args...)
	}
	has := func(ns string) bool { return slices.Contains(iso.Namespaces, ns) }
	argv := []string{HelperName}
	if has("mount") {
		argv = append(argv, "--private-mounts")
		if iso.PrivateTmp {
			argv = append(argv, "--private-tmp")
		}
		if has("pid") {
			argv = append(argv, "--proc")
		}
	}
	if iso.Hostname != "" {
		argv = append(argv, "--hostname="+iso.Hostname)
	}
	if has("net") {
		argv = append(argv, "--lo")
	}
	if root != "/" {
		argv = append(argv, "--root="+root)
	}
	argv = append(argv, "--", binary)
	return self, append(argv, args...)
}

// Helper is the helper's main: it sets up what its flags say inside the
// namespaces it was cloned into, then executes the service (args after
// "--"). It returns only on failure, with HelperFailed.
func Helper(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet(HelperName, flag.ContinueOnError)
	fs.SetOutput(stderr)
	privateMounts := fs.Bool("private-mounts", false, "make every mount private (no propagation either way)")
	privateTmp := fs.Bool("private-tmp", false, "a fresh tmpfs on /tmp")
	proc := fs.Bool("proc", false, "a /proc of the new pid namespace")
	hostname := fs.String("hostname", "", "set the host name (uts namespace)")
	lo := fs.Bool("lo", false, "bring loopback up (net namespace)")
	root := fs.String("root", "/", "change root to this directory")
	err := fs.Parse(args)
	if err == nil && fs.NArg() == 0 {
		err = errors.New("no service to execute")
	}
	if err == nil {
		err = setup(*privateMounts, *privateTmp, *proc, *hostname, *lo, *root)
	}
	if err == nil {
		argv := fs.Args()
		err = syscall.Exec(argv[0], argv, os.Environ())
		err = fmt.Errorf("exec %s: %w", argv[0], err)
	}
	fmt.Fprintf(stderr, "%s: %v\n", HelperName, err)
	return HelperFailed
}

func setup(privateMounts, privateTmp, proc bool, hostname string, lo bool, root string) error {
	if privateMounts {
		// Nothing mounted here reaches the rest of the system, and
		// nothing mounted there reaches the service.
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			return fmt.Errorf("make mounts private: %w", err)
		}
	}
	if privateTmp {
		tmp := filepath.Join(root, "tmp")
		if err := unix.Mount("tmpfs", tmp, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=1777"); err != nil {
			return fmt.Errorf("private /tmp: mount tmpfs on %s: %w", tmp, err)
		}
	}
	if proc {
		// The /proc inherited shows the parent namespace's processes.
		p := filepath.Join(root, "proc")
		if err := unix.Mount("proc", p, "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
			return fmt.Errorf("mount proc on %s: %w", p, err)
		}
	}
	if hostname != "" {
		if err := unix.Sethostname([]byte(hostname)); err != nil {
			return fmt.Errorf("set host name %q: %w", hostname, err)
		}
	}
	if lo {
		if err := loopback.Up(); err != nil {
			return err
		}
	}
	if root != "/" {
		if err := unix.Chroot(root); err != nil {
			return fmt.Errorf("change root to %s: %w", root, err)
		}
		if err := unix.Chdir("/"); err != nil {
			return fmt.Errorf("change root to %s: %w", root, err)
		}
	}
	return nil
}
