package vm

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestArgs(t *testing.T) {
	c := Config{
		Kernel: "/a/vmlinuz", Initrd: "/a/initramfs.cpio.zst", Disk: "/a,b/disk.img",
		Append: "console=ttyS0 panic=-1", MemoryMB: 1024, CPUs: 2, Machine: "q35",
	}
	got := c.args("tcg", "/tmp/s/console.sock", "/tmp/s/report.sock")
	want := []string{
		"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		"-machine", "q35", "-accel", "tcg", "-m", "1024", "-smp", "2",
		"-kernel", "/a/vmlinuz", "-initrd", "/a/initramfs.cpio.zst", "-append", "console=ttyS0 panic=-1",
		"-drive", "file=/a,,b/disk.img,format=raw,if=virtio,snapshot=on",
		"-chardev", "socket,id=console,path=/tmp/s/console.sock", "-serial", "chardev:console",
		"-chardev", "socket,id=report,path=/tmp/s/report.sock", "-serial", "chardev:report",
	}
	if !slices.Equal(got, want) {
		t.Errorf("args =\n%q\nwant\n%q", got, want)
	}
}

func TestArgsWithoutOptionalParts(t *testing.T) {
	c := Config{Kernel: "/k", MemoryMB: 256, CPUs: 1, Machine: "pc"}
	got := strings.Join(c.args("kvm", "c", "r"), " ")
	want := "-nodefaults -no-user-config -display none -no-reboot -machine pc -accel kvm -m 256 -smp 1 -kernel /k " +
		"-chardev socket,id=console,path=c -serial chardev:console -chardev socket,id=report,path=r -serial chardev:report"
	if got != want {
		t.Errorf("args = %s; want %s", got, want)
	}
}

func TestWithDefaults(t *testing.T) {
	dir := t.TempDir()
	kernel := filepath.Join(dir, "vmlinuz")
	if err := os.WriteFile(kernel, []byte("k"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Config{Kernel: kernel}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if c.Machine != "pc" || c.Accel != "auto" || c.MemoryMB != DefaultMemoryMB || c.CPUs != 1 ||
		c.Timeout != DefaultTimeout || c.QEMU != "qemu-system-x86_64" || c.Stderr == nil {
		t.Errorf("withDefaults() = %+v; want the documented defaults", c)
	}

	for _, tc := range []struct {
		name string
		c    Config
		want string
	}{
		{"no kernel", Config{}, "no kernel"},
		{"missing kernel", Config{Kernel: filepath.Join(dir, "nope")}, "kernel: stat"},
		{"kernel is a directory", Config{Kernel: dir}, "not a regular file"},
		{"missing initrd", Config{Kernel: kernel, Initrd: filepath.Join(dir, "nope")}, "initrd: stat"},
		{"missing disk", Config{Kernel: kernel, Disk: filepath.Join(dir, "nope")}, "disk: stat"},
		{"bad accel", Config{Kernel: kernel, Accel: "hvf"}, `accelerator "hvf"`},
		{"bad TCG threads", Config{Kernel: kernel, TCGThreads: "many"}, `TCG threads "many"`},
		{"negative memory", Config{Kernel: kernel, MemoryMB: -1}, "must not be negative"},
		{"negative timeout", Config{Kernel: kernel, Timeout: -time.Second}, "must not be negative"},
	} {
		if _, err := tc.c.withDefaults(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: withDefaults() error = %v; want one with %q", tc.name, err, tc.want)
		}
	}
}
