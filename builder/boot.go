package builder

import (
	"fmt"
	"os"
	"path"

	"yakimg/rootfs"
)

// Where the root file system keeps the image's own kernel and initramfs.
// A kexec loads them from here: the kernel cannot be booted from inside
// the initramfs it came with (platform facts §5), and the kexec suite's
// dry run checks this very kernel.
const (
	RootInitramfs = "boot/initramfs.cpio.zst"
	rootKernelDir = "boot"
)

// RootKernel is the root file system's path of the kernel of release.
func RootKernel(release string) string { return path.Join(rootKernelDir, "vmlinuz-"+release) }

// addBootFiles puts the kernel and the initramfs written at initramfsPath
// into root.
func addBootFiles(root *rootfs.Tree, release string, vmlinuz []byte, initramfsPath string) error {
	initrd, err := os.ReadFile(initramfsPath)
	if err != nil {
		return fmt.Errorf("read initramfs for the root file system: %w", err)
	}
	if err := root.AddFile(RootKernel(release), 0o644, vmlinuz); err != nil {
		return err
	}
	return root.AddFile(RootInitramfs, 0o644, initrd)
}
