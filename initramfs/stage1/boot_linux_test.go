package stage1

import (
	"bytes"
	"context"
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/partition/gpt"

	"yakimg/initramfs"
	"yakimg/initramfs/kmod"
	"yakimg/rootfs"
	"yakimg/suites/report"
)

// The boot test runs the real stage 1 as PID 1 under QEMU (TCG): the
// Debian cloud kernel from $YAKIMG_TEST_KERNEL_TREE, an initramfs made by
// this repository's cpio writer with modules ordered by kmod, and a GPT
// disk with an ext4 root holding a stand-in graph-resolver
// (testdata/resolver) and an ext4 checkpoint partition.

type bootImage struct {
	kernel, initrd, disk string
}

func buildImage(t *testing.T) bootImage {
	t.Helper()
	kdir := os.Getenv("YAKIMG_TEST_KERNEL_TREE")
	if kdir == "" {
		t.Skip("set YAKIMG_TEST_KERNEL_TREE to an unpacked Debian cloud kernel package (dpkg-deb -x linux-image-*-cloud-amd64.deb DIR)")
	}
	for _, tool := range []string{"qemu-system-x86_64", "mkfs.ext4", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s: %v", tool, err)
		}
	}
	out := t.TempDir()
	releases, err := os.ReadDir(filepath.Join(kdir, "lib/modules"))
	if err != nil || len(releases) != 1 {
		t.Fatalf("YAKIMG_TEST_KERNEL_TREE=%s: want exactly one lib/modules/<release> (%v)", kdir, err)
	}
	release := releases[0].Name()
	img := bootImage{
		kernel: filepath.Join(kdir, "boot", "vmlinuz-"+release),
		initrd: filepath.Join(out, "initramfs.cpio.zst"),
		disk:   filepath.Join(out, "disk.img"),
	}

	runner := goBuild(t, "./testdata/runner", out)
	resolver := goBuild(t, "./testdata/resolver", out)

	mods := rootfs.NewTree()
	base := filepath.Join(kdir, "lib/modules", release)
	err = filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() || !strings.HasSuffix(p, ".ko") {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(kdir, p)
		return mods.AddFile(rel, 0o644, b)
	})
	if err != nil {
		t.Fatal(err)
	}
	index, err := kmod.Index(mods, release)
	if err != nil {
		t.Fatal(err)
	}
	order, err := kmod.LoadOrder(index, []string{"virtio_pci", "virtio_blk", "nf_tables"})
	if err != nil {
		t.Fatal(err)
	}

	tree := rootfs.NewTree()
	cfg := Config{Root: "/dev/vda1", Checkpoint: "/dev/vda2", Init: "/sbin/graph-resolver",
		DeadlineS: 600, Channel: "/dev/ttyS1"}
	for _, m := range order {
		e, _ := mods.Get(m.Path)
		must(t, tree.AddFile(m.Path, 0o644, e.Data))
		cfg.Modules = append(cfg.Modules, "/"+m.Path)
	}
	cfgJSON, err := json.MarshalIndent(cfg, "", "  ")
	must(t, err)
	must(t, tree.AddFile("init", 0o755, readFile(t, runner)))
	must(t, tree.AddFile(ConfigPath, 0o644, cfgJSON))
	must(t, tree.AddCharDev("dev/console", 0o600, 5, 1))
	must(t, tree.AddDir("proc", 0o555))
	must(t, tree.AddDir("sys", 0o555))
	f, err := os.Create(img.initrd)
	must(t, err)
	must(t, initramfs.WriteZstd(f, tree, time.Unix(0, 0)))
	must(t, f.Close())

	rootDir := filepath.Join(out, "rootdir")
	for _, d := range []string{"sbin", "dev", "proc", "sys"} {
		must(t, os.MkdirAll(filepath.Join(rootDir, d), 0o755))
	}
	must(t, os.WriteFile(filepath.Join(rootDir, "sbin/graph-resolver"), readFile(t, resolver), 0o755))
	rootImg, ckptImg := filepath.Join(out, "root.ext4"), filepath.Join(out, "checkpoint.ext4")
	run(t, "mkfs.ext4", "-q", "-F", "-L", "root", "-d", rootDir, rootImg, "24M")
	run(t, "mkfs.ext4", "-q", "-F", "-L", "checkpoint", ckptImg, "8M")
	makeDisk(t, img.disk, rootImg, ckptImg)
	return img
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	must(t, err)
	return b
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

func goBuild(t *testing.T, pkg, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w -buildid=", "-o", bin, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	return bin
}

// makeDisk writes a GPT disk with the two file system images as its
// partitions 1 and 2 (vda1, vda2).
func makeDisk(t *testing.T, path string, parts ...string) {
	t.Helper()
	const sector = 512
	table := &gpt.Table{LogicalSectorSize: sector, PhysicalSectorSize: sector, ProtectiveMBR: true}
	start := uint64(2048)
	for i, p := range parts {
		fi, err := os.Stat(p)
		must(t, err)
		n := uint64(fi.Size()) / sector
		table.Partitions = append(table.Partitions, &gpt.Partition{
			Index: i + 1, Start: start, End: start + n - 1, Type: gpt.LinuxFilesystem, Name: filepath.Base(p)})
		start += n
	}
	d, err := diskfs.Create(path, int64(start+2048)*sector, diskfs.SectorSize512)
	must(t, err)
	defer d.Close()
	must(t, d.Partition(table))
	for i, p := range parts {
		f, err := os.Open(p)
		must(t, err)
		_, err = d.WritePartitionContents(i+1, f)
		f.Close()
		must(t, err)
	}
}

type bootResult struct {
	console    string
	transcript *report.Transcript
	wall       time.Duration
}

// boot runs the image with extra kernel parameters until the guest powers
// off (QEMU exits 0 with -no-reboot) and returns what the two serial ports
// carried.
func boot(t *testing.T, img bootImage, extraAppend string) bootResult {
	t.Helper()
	channel := filepath.Join(t.TempDir(), "ttyS1")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "qemu-system-x86_64",
		"-nodefaults", "-display", "none", "-no-reboot", "-accel", "tcg", "-m", "512",
		"-kernel", img.kernel, "-initrd", img.initrd,
		"-append", "console=ttyS0 quiet panic=-1 "+extraAppend,
		"-serial", "stdio", "-serial", "file:"+channel,
		"-drive", "file="+img.disk+",format=raw,if=virtio,snapshot=on")
	var console bytes.Buffer
	cmd.Stdout, cmd.Stderr = &console, &console
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	t.Logf("guest console (%v wall):\n%s", wall.Round(time.Millisecond), console.String())
	if ctx.Err() != nil {
		t.Fatalf("the guest did not power off within 2 minutes")
	}
	if err != nil {
		t.Fatalf("qemu: %v", err)
	}
	if strings.Contains(console.String(), "Kernel panic") {
		t.Errorf("the guest kernel panicked")
	}
	f, err := os.Open(channel)
	must(t, err)
	defer f.Close()
	tr, err := report.Decode(f)
	must(t, err)
	return bootResult{console: console.String(), transcript: tr, wall: wall}
}

// wantLines checks the console for lines starting with each pattern. Line
// ends are not anchored: a kernel message may still land in the middle of
// a line (quiet keeps that rare).
func wantLines(t *testing.T, console string, patterns ...string) {
	t.Helper()
	for _, p := range patterns {
		if !regexp.MustCompile(`(?m)` + p).MatchString(console) {
			t.Errorf("the console has no line matching %s", p)
		}
	}
}

func TestBootInQEMU(t *testing.T) {
	img := buildImage(t)

	t.Run("execs graph-resolver as PID 1", func(t *testing.T) {
		t.Parallel()
		r := boot(t, img, "")
		wantLines(t, r.console,
			`^yakimg-runner: \[\d+ ms\] mounted /dev, /proc, /sys`,
			`^yakimg-runner: \[\d+ ms\] loaded 9 modules \(0 already present\) in \d+ ms: virtio_ring virtio_pci_modern_dev virtio_pci_legacy_dev virtio virtio_pci virtio_blk nfnetlink libcrc32c nf_tables`,
			`^yakimg-runner: \[\d+ ms\] lo is up`,
			`^yakimg-runner: \[\d+ ms\] mounted /dev/vda1 on / \(ext4, rw\) in \d+ ms`,
			`^yakimg-runner: \[\d+ ms\] mounted /dev/vda2 on /checkpoint \(ext4, rw\) in \d+ ms`,
			`^yakimg-runner: \[\d+ ms\] started sentinel pid \d+ \(fires at 600 s since boot\)`,
			`^yakimg-runner: \[\d+ ms\] switched root to /dev/vda1; freed \d+ initramfs entries`,
			`^yakimg-runner: \[\d+ ms\] exec /sbin/graph-resolver as PID 1`,
			`^RESOLVER-MARKER pid=1 argv0=graph-resolver root=ext4 checkpoint=ext4 lo_up=true nf_tables=true initramfs_visible=false sentinel=true `,
		)
		if r.transcript.Sentinel != nil || len(r.transcript.Corrupt) > 0 {
			t.Errorf("the report channel carries %+v; want nothing from a boot that went well", r.transcript)
		}
	})

	t.Run("sentinel reports and powers off at the deadline", func(t *testing.T) {
		t.Parallel()
		r := boot(t, img, "yakimg.deadline=20 resolver.hang")
		wantLines(t, r.console,
			`^RESOLVER-HANGING`,
			`^yakimg-runner sentinel: deadline of 20 s passed \(up 2\d s\) without the suites finishing; powering off`)
		s := r.transcript.Sentinel
		t.Logf("sentinel frame: %+v", s)
		if s == nil {
			t.Fatalf("no sentinel frame on the report channel: %+v", r.transcript)
		}
		if s.Reason != "deadline" || s.UptimeS < 20 ||
			!regexp.MustCompile(`(?m)^1 graph-resolver S$`).MatchString(s.Diagnostics) ||
			!strings.Contains(s.Diagnostics, "yakimg-sentinel") || !strings.HasPrefix(s.Diagnostics, "loadavg ") ||
			strings.Contains(s.Diagnostics, "kthreadd") || !strings.Contains(s.Diagnostics, "kernel threads)") {
			t.Errorf("sentinel frame = %+v; want reason deadline after 20 s with graph-resolver and the sentinel in the process list, kernel threads only counted", *s)
		}
	})

	t.Run("stage 1 failure is reported and powers off", func(t *testing.T) {
		t.Parallel()
		// The whole disk holds a partition table, not ext4.
		r := boot(t, img, "yakimg.root=/dev/vda")
		wantLines(t, r.console,
			`^yakimg-runner: \[\d+ ms\] FAILED: mount /dev/vda on /newroot \(ext4\): invalid argument`,
			`^yakimg-runner: \[\d+ ms\] powering off`)
		s := r.transcript.Sentinel
		if s == nil || s.Reason != "stage1: mount /dev/vda on /newroot (ext4): invalid argument" ||
			!strings.Contains(s.Diagnostics, "lo is up") {
			t.Errorf("sentinel frame = %+v; want the stage-1 failure with the console lines so far", s)
		}
	})
}
