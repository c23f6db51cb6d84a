package builder

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"yakimg/builder/diskimage"
	"yakimg/initramfs"
	"yakimg/initramfs/kmod"
	"yakimg/initramfs/stage1"
	"yakimg/rootfs"
	"yakimg/vm"
)

// Artifact file names.
const (
	KernelFile    = "vmlinuz"
	InitramfsFile = "initramfs.cpio.zst"
	DiskFile      = "disk.img"
	ManifestFile  = "manifest.json"
)

// stage1Modules are loaded by stage 1 (with their dependencies, computed
// from .modinfo): the virtio disk, what CRIU needs to detect kernel
// features (platform facts §5), and the socket diagnostics CRIU reads a
// process's TCP and unix sockets with (without tcp_diag a dump of any TCP
// listener fails: "Sockets (family 2 proto 6) are not collected").
var stage1Modules = []string{"virtio_pci", "virtio_blk", "nf_tables", "tcp_diag", "unix_diag"}

// Options configure one build.
type Options struct {
	Project  *Project
	Lock     *rootfs.Lock
	Cache    rootfs.Cache
	OutDir   string
	Progress func(format string, args ...any)
	// Epoch, when set, replaces Project.Epoch: yakimg verify rebuilds with
	// the epoch an image recorded, whatever SOURCE_DATE_EPOCH says now.
	Epoch *time.Time
}

func (o *Options) progress(format string, args ...any) {
	if o.Progress != nil {
		o.Progress(format, args...)
	}
}

// Result describes a finished build.
type Result struct {
	Dir      string
	Manifest *Manifest
}

// Build assembles the image into o.OutDir. It works in a fresh sibling
// directory and renames it into place only when every artifact is
// complete, so an interrupted build never leaves a partial artifact at the
// final path.
func Build(ctx context.Context, o Options) (*Result, error) {
	start := time.Now()
	out, err := filepath.Abs(o.OutDir)
	if err != nil {
		return nil, err
	}
	parent := filepath.Dir(out)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, fmt.Errorf("output directory %s cannot be created: %w", parent, err)
	}
	if fi, err := os.Stat(out); err == nil && !fi.IsDir() {
		return nil, fmt.Errorf("output %s exists and is not a directory", out)
	}
	work, err := os.MkdirTemp(parent, "."+filepath.Base(out)+".building-")
	if err != nil {
		return nil, fmt.Errorf("output directory %s is not writable: %w", parent, err)
	}
	defer os.RemoveAll(work)

	m, err := assemble(ctx, o, work)
	if err != nil {
		return nil, err
	}
	if err := replaceDir(work, out); err != nil {
		return nil, err
	}
	o.progress("build complete in %.1fs: %s", time.Since(start).Seconds(), out)
	return &Result{Dir: out, Manifest: m}, nil
}

// replaceDir moves work to out, replacing a previous build at out.
func replaceDir(work, out string) error {
	if err := os.Chmod(work, 0o755); err != nil {
		return err
	}
	old := ""
	if _, err := os.Stat(out); err == nil {
		old = work + ".old"
		if err := os.Rename(out, old); err != nil {
			return fmt.Errorf("replace %s: %w", out, err)
		}
	}
	if err := os.Rename(work, out); err != nil {
		if old != "" {
			os.Rename(old, out)
		}
		return fmt.Errorf("move build into %s: %w", out, err)
	}
	if old != "" {
		return os.RemoveAll(old)
	}
	return nil
}

type inputs struct {
	epoch        time.Time
	goVersion    string
	sourceDigest string
	lockDigest   string
	imageDigest  string
}

func assemble(ctx context.Context, o Options, work string) (*Manifest, error) {
	in, err := gatherInputs(ctx, o)
	if err != nil {
		return nil, err
	}
	o.progress("inputs: source %s, lock %s, %s, epoch %d", short(in.sourceDigest), short(in.lockDigest), in.goVersion, in.epoch.Unix())

	// The Go build and the package unpacking are independent; run them side by side.
	var (
		wg        sync.WaitGroup
		goErr     error
		binDir    = filepath.Join(work, ".bin")
		kernel    *kernelParts
		pkgTree   *rootfs.Tree
		pkgCount  int
		unpackErr error
	)
	if err := os.Mkdir(binDir, 0o755); err != nil {
		return nil, err
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.Now()
		goErr = BuildGo(ctx, o.Project.Root, binDir, strings.TrimPrefix(in.sourceDigest, "sha256:")[:12], GuestBinaries)
		if goErr == nil {
			o.progress("built %d Go binaries in %.1fs", len(GuestBinaries), time.Since(t).Seconds())
		}
	}()
	t := time.Now()
	kernel, unpackErr = unpackKernel(o)
	if unpackErr == nil {
		pkgTree, pkgCount, unpackErr = unpackPackages(o)
	}
	if unpackErr == nil {
		o.progress("unpacked kernel %s (%d modules) and %d packages (%d entries) in %.1fs", kernel.release, len(kernel.modules), pkgCount, pkgTree.Len(), time.Since(t).Seconds())
	}
	wg.Wait()
	if err := errors.Join(unpackErr, goErr); err != nil {
		return nil, err
	}
	bins := map[string][]byte{}
	for _, b := range GuestBinaries {
		data, err := os.ReadFile(filepath.Join(binDir, b.Name))
		if err != nil {
			return nil, err
		}
		bins[b.Name] = data
	}
	if err := os.RemoveAll(binDir); err != nil {
		return nil, err
	}

	if err := os.WriteFile(filepath.Join(work, KernelFile), kernel.vmlinuz, 0o644); err != nil {
		return nil, err
	}

	t = time.Now()
	initTree, order, err := initramfsTree(kernel, bins["yakimg-runner"])
	if err != nil {
		return nil, err
	}
	if err := writeFileWith(filepath.Join(work, InitramfsFile), func(f *os.File) error {
		return initramfs.WriteZstd(f, initTree, in.epoch)
	}); err != nil {
		return nil, fmt.Errorf("write initramfs: %w", err)
	}
	o.progress("initramfs: %d entries, modules %s (%.1fs)", initTree.Len(), strings.Join(order, " "), time.Since(t).Seconds())

	t = time.Now()
	root, err := rootTree(o, in, bins, pkgTree)
	if err != nil {
		return nil, err
	}
	if err := addBootFiles(root, kernel.release, kernel.vmlinuz, filepath.Join(work, InitramfsFile)); err != nil {
		return nil, err
	}
	dynamic, err := checkSharedLibraries(root)
	if err != nil {
		return nil, err
	}
	o.progress("root: every library of the %d dynamically linked programs is present", dynamic)
	seed, _ := hex.DecodeString(strings.TrimPrefix(in.imageDigest, "sha256:"))
	layout, err := diskimage.Write(filepath.Join(work, DiskFile), diskimage.Spec{
		Epoch: in.epoch,
		Seed:  seed,
		Partitions: []diskimage.Partition{
			{Name: "yakimg-root", Label: "root", SizeMiB: o.Project.Image.RootSizeMiB, Tree: root},
			{Name: "yakimg-checkpoint", Label: "checkpoint", SizeMiB: o.Project.Image.CheckpointSizeMiB},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("write disk image: %w", err)
	}
	o.progress("disk: root %d entries (%d KiB of files), checkpoint partition empty (%.1fs)", root.Len(), root.Size()>>10, time.Since(t).Seconds())

	boot := &vm.BootSpec{
		Kernel: KernelFile,
		Initrd: InitramfsFile,
		Disk:   DiskFile,
		// softlockup_panic: a guest whose CPUs lock up (seen now and
		// then under TCG: both vCPUs stuck in the kernel while processes
		// are being created) panics within seconds, which the host reports
		// as such, instead of running into the boot's timeout.
		Append:   "console=ttyS0 panic=-1 softlockup_panic=1 quiet",
		MemoryMB: o.Project.Image.MemoryMB,
		CPUs:     o.Project.Image.CPUs,
		Machine:  "pc",
	}
	if err := boot.Write(work); err != nil {
		return nil, err
	}
	m, err := writeManifest(work, o, in, kernel.release, layout)
	if err != nil {
		return nil, err
	}
	return m, nil
}

func gatherInputs(ctx context.Context, o Options) (inputs, error) {
	var in inputs
	var err error
	if o.Epoch != nil {
		in.epoch = o.Epoch.UTC()
	} else if in.epoch, err = o.Project.Epoch(); err != nil {
		return in, err
	}
	if in.goVersion, err = GoVersion(ctx); err != nil {
		return in, err
	}
	if in.sourceDigest, err = SourceDigest(o.Project.Root); err != nil {
		return in, err
	}
	in.lockDigest = o.Lock.Digest()
	h := sha256.New()
	fmt.Fprintf(h, "yakimg image\x00%s\x00%s\x00%s\x00%d", in.sourceDigest, in.lockDigest, in.goVersion, in.epoch.Unix())
	in.imageDigest = "sha256:" + hex.EncodeToString(h.Sum(nil))
	return in, nil
}

func short(digest string) string {
	d := strings.TrimPrefix(digest, "sha256:")
	if len(d) > 12 {
		d = d[:12]
	}
	return d
}

// writeFileWith creates path and lets fill write it, removing it on error.
func writeFileWith(path string, fill func(*os.File) error) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	err = fill(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
	}
	return err
}

// findPackage returns the locked package whose name has the prefix.
func findPackage(l *rootfs.Lock, prefix string) (rootfs.LockedPackage, error) {
	var found []rootfs.LockedPackage
	for _, p := range l.Packages {
		if strings.HasPrefix(p.Name, prefix) {
			found = append(found, p)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return rootfs.LockedPackage{}, fmt.Errorf("%s has no package %s*; add it to %s and run yakimg lock --update", LockFile, prefix, ProjectFile)
	}
	return rootfs.LockedPackage{}, fmt.Errorf("%s has %d packages %s*; keep exactly one", LockFile, len(found), prefix)
}

type kernelParts struct {
	release string
	vmlinuz []byte
	tree    *rootfs.Tree // the modules, at lib/modules/<release>/...
	modules map[string]kmod.Module
}

func unpackKernel(o Options) (*kernelParts, error) {
	pkg, err := findPackage(o.Lock, "linux-image-")
	if err != nil {
		return nil, err
	}
	archive, err := o.Cache.DataTar(pkg)
	if err != nil {
		return nil, err
	}
	tree, err := rootfs.UnpackTar(pkg.String(), archive, func(p string) bool {
		return strings.HasPrefix(p, "boot/vmlinuz-") || (strings.HasPrefix(p, "lib/modules/") && strings.Contains(p, ".ko"))
	})
	if err != nil {
		return nil, fmt.Errorf("unpack %s: %w", pkg.Name, err)
	}
	k := &kernelParts{tree: tree}
	for _, p := range tree.Paths() {
		if rel, ok := strings.CutPrefix(p, "boot/vmlinuz-"); ok {
			e, _ := tree.Get(p)
			k.release, k.vmlinuz = rel, e.Data
		}
	}
	if k.vmlinuz == nil {
		return nil, fmt.Errorf("%s %s has no boot/vmlinuz-*", pkg.Name, pkg.Version)
	}
	if k.modules, err = kmod.Index(tree, k.release); err != nil {
		return nil, fmt.Errorf("index modules of %s: %w", pkg.Name, err)
	}
	return k, nil
}

// initramfsTree is stage 1: the runner as /init, the modules it loads and
// its configuration.
func initramfsTree(k *kernelParts, runner []byte) (*rootfs.Tree, []string, error) {
	order, err := kmod.LoadOrder(k.modules, stage1Modules)
	if err != nil {
		return nil, nil, fmt.Errorf("module load order: %w", err)
	}
	t := rootfs.NewTree()
	cfg := stage1.Config{
		Root:       "/dev/vda1",
		Checkpoint: "/dev/vda2",
		Init:       "/sbin/graph-resolver",
		DeadlineS:  600,
		Channel:    "/dev/ttyS1",
	}
	var names []string
	for _, m := range order {
		e, ok := k.tree.Get(m.Path)
		if !ok {
			return nil, nil, fmt.Errorf("module %s: %s missing from the kernel package", m.Name, m.Path)
		}
		if err := t.AddFile(m.Path, 0o644, e.Data); err != nil {
			return nil, nil, err
		}
		cfg.Modules = append(cfg.Modules, "/"+m.Path)
		names = append(names, m.Name)
	}
	cfgJSON, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return nil, nil, err
	}
	for _, step := range []error{
		t.AddFile("init", 0o755, runner),
		t.AddFile("etc/yakimg/stage1.json", 0o644, append(cfgJSON, '\n')),
		t.AddDir("dev", 0o755),
		t.AddCharDev("dev/console", 0o600, 5, 1),
		t.AddDir("proc", 0o555),
		t.AddDir("sys", 0o555),
		t.AddDir("newroot", 0o755),
		t.AddDir("tmp", 0o1777),
	} {
		if step != nil {
			return nil, nil, step
		}
	}
	return t, names, nil
}

// ImageInfo is /etc/yakimg/image.json in the root filesystem: what the
// suite runner reports as the identity of the image it runs in.
type ImageInfo struct {
	YakirosVersion string `json:"yakiros_version"`
	ImageDigest    string `json:"image_digest"`
	LockDigest     string `json:"lock_digest"`
	OS             string `json:"os"`
}

// rootTree is the root file system: the packages, then YakirOS, the test
// services and the image's identity on top of them.
func rootTree(o Options, in inputs, bins map[string][]byte, t *rootfs.Tree) (*rootfs.Tree, error) {
	if e, ok := t.Get("bin/busybox"); !ok || e.Kind != rootfs.Regular {
		return nil, fmt.Errorf("no package ships bin/busybox; %s must list busybox-static", ProjectFile)
	}
	info, err := json.MarshalIndent(ImageInfo{
		YakirosVersion: short(in.sourceDigest),
		ImageDigest:    in.imageDigest,
		LockDigest:     in.lockDigest,
		OS:             "Debian 12 (bookworm)",
	}, "", "  ")
	if err != nil {
		return nil, err
	}
	add := []struct {
		path string
		perm uint32
		data []byte
	}{
		{"sbin/graph-resolver", 0o755, bins["graph-resolver"]},
		{"usr/bin/graphctl", 0o755, bins["graphctl"]},
		{"usr/bin/yakimg-runner", 0o755, bins["yakimg-runner"]},
		{"usr/local/bin/test-echo-server", 0o755, bins["test-echo-server"]},
		{"usr/local/bin/test-web-server", 0o755, bins["test-web-server"]},
		{"usr/local/bin/test-database", 0o755, bins["test-database"]},
		{"usr/local/bin/test-monitor", 0o755, bins["test-monitor"]},
		{"usr/local/bin/test-health-service", 0o755, bins["test-health-service"]},
		{"usr/local/bin/test-file-server", 0o755, bins["test-file-server"]},
		{"usr/local/bin/test-crash-on-start", 0o755, bins["test-crash-on-start"]},
		{"usr/local/bin/test-never-ready", 0o755, bins["test-never-ready"]},
		{"usr/local/bin/test-isolated-service", 0o755, bins["test-isolated-service"]},
		{"usr/local/bin/test-checkpoint-service", 0o755, bins["test-checkpoint-service"]},
		{"etc/yakimg/image.json", 0o644, append(info, '\n')},
		{"etc/hostname", 0o644, []byte("yakimg\n")},
		{"etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")},
		{"etc/group", 0o644, []byte("root:x:0:\ntty:x:5:\nnogroup:x:65534:\n")},
		{"etc/os-release", 0o644, []byte("PRETTY_NAME=\"YakirOS test image (Debian 12 bookworm packages)\"\nNAME=\"YakirOS\"\nID=yakiros\nID_LIKE=debian\nVERSION_ID=\"" + short(in.imageDigest) + "\"\n")},
	}
	for _, a := range add {
		if err := t.AddFile(a.path, a.perm, a.data); err != nil {
			return nil, err
		}
	}
	for _, d := range []struct {
		path string
		perm uint32
	}{{"proc", 0o555}, {"sys", 0o555}, {"dev", 0o755}, {"run", 0o755}, {"tmp", 0o1777}, {"root", 0o700}, {"checkpoint", 0o755}, {"etc/graph.d", 0o755}, {"var/lib/graph", 0o755}} {
		if err := t.AddDir(d.path, d.perm); err != nil {
			return nil, err
		}
	}
	if err := t.AddSymlink("bin/sh", "busybox"); err != nil {
		return nil, err
	}
	comps, err := filepath.Glob(filepath.Join(o.Project.Root, "components", "*.toml"))
	if err != nil {
		return nil, err
	}
	sort.Strings(comps)
	if len(comps) == 0 {
		return nil, fmt.Errorf("no component declarations in %s", filepath.Join(o.Project.Root, "components"))
	}
	for _, c := range comps {
		data, err := os.ReadFile(c)
		if err != nil {
			return nil, err
		}
		if err := t.AddFile(path.Join("etc/graph.d", filepath.Base(c)), 0o644, data); err != nil {
			return nil, err
		}
	}
	// The components' scripts go where the reference keeps health-check
	// scripts.
	scripts, err := filepath.Glob(filepath.Join(o.Project.Root, "components", "*.sh"))
	if err != nil {
		return nil, err
	}
	sort.Strings(scripts)
	for _, s := range scripts {
		data, err := os.ReadFile(s)
		if err != nil {
			return nil, err
		}
		if err := t.AddFile(path.Join("usr/libexec/graph", filepath.Base(s)), 0o755, data); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// Output is one artifact's identity.
type Output struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Manifest is manifest.json: every input digest and every output digest.
type Manifest struct {
	Format          int                    `json:"format"`
	ImageDigest     string                 `json:"image_digest"`
	SourceDigest    string                 `json:"source_digest"`
	LockDigest      string                 `json:"lock_digest"`
	GoVersion       string                 `json:"go_version"`
	SourceDateEpoch int64                  `json:"source_date_epoch"`
	KernelRelease   string                 `json:"kernel_release"`
	Packages        []rootfs.LockedPackage `json:"packages"`
	Disk            *diskimage.Layout      `json:"disk"`
	Outputs         []Output               `json:"outputs"`
}

// ManifestFormat is the version of manifest.json's layout.
const ManifestFormat = 1

func writeManifest(dir string, o Options, in inputs, release string, layout *diskimage.Layout) (*Manifest, error) {
	m := &Manifest{
		Format:          ManifestFormat,
		ImageDigest:     in.imageDigest,
		SourceDigest:    in.sourceDigest,
		LockDigest:      in.lockDigest,
		GoVersion:       in.goVersion,
		SourceDateEpoch: in.epoch.Unix(),
		KernelRelease:   release,
		Packages:        o.Lock.Packages,
		Disk:            layout,
	}
	for _, name := range []string{KernelFile, InitramfsFile, DiskFile, vm.BootSpecFile} {
		out, err := digestFile(filepath.Join(dir, name))
		if err != nil {
			return nil, err
		}
		out.Name = name
		m.Outputs = append(m.Outputs, out)
	}
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	return m, os.WriteFile(filepath.Join(dir, ManifestFile), append(data, '\n'), 0o644)
}

func digestFile(path string) (Output, error) {
	f, err := os.Open(path)
	if err != nil {
		return Output{}, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return Output{}, fmt.Errorf("digest %s: %w", path, err)
	}
	return Output{Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}
