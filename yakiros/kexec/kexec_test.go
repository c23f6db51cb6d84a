package kexec

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"yakimg/yakiros/control"
)

// fakeBzImage builds a kernel file with a setup header like the Debian
// cloud kernel's (protocol 2.15, 39 setup sectors, 51.5 MiB init_size) and
// payload bytes of protected-mode code.
func fakeBzImage(payload int) []byte {
	const setupSects = 39
	b := make([]byte, (setupSects+1)*512+payload)
	le := binary.LittleEndian
	b[0x1f1] = setupSects
	le.PutUint32(b[0x1f4:], uint32(payload/16))
	le.PutUint16(b[0x1fe:], 0xaa55)
	copy(b[0x202:], "HdrS")
	le.PutUint16(b[0x206:], 0x020f)
	b[0x211] = loadedHigh
	le.PutUint32(b[0x230:], 0x200000)
	b[0x234] = 1
	le.PutUint16(b[0x236:], 0x7f)
	le.PutUint32(b[0x238:], 2047)
	le.PutUint32(b[0x260:], 53968896)
	return b
}

func writeFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func parseFile(t *testing.T, p string) (Header, error) {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	return ParseBzImage(f, fi.Size())
}

func TestParseFakeBzImage(t *testing.T) {
	h, err := parseFile(t, writeFile(t, "vmlinuz", fakeBzImage(64<<10)))
	if err != nil {
		t.Fatal(err)
	}
	if h.ProtocolString() != "2.15" || h.SetupSects != 39 || h.SysSize != 64<<10 || !h.Relocatable || h.CmdlineSize != 2047 {
		t.Errorf("header = %+v", h)
	}
	if got, want := h.LoadSize(), int64(26*2<<20); got != want { // 51.5 MiB rounded up to 2 MiB
		t.Errorf("LoadSize = %d, want %d", got, want)
	}
}

func TestParseRejects(t *testing.T) {
	cases := []struct {
		name   string
		mutate func([]byte) []byte
		want   string
	}{
		{"truncated", func(b []byte) []byte { return b[:len(b)-100] }, "truncated"},
		{"text", func([]byte) []byte { return []byte(strings.Repeat("not a kernel\n", 100)) }, "no \"HdrS\" magic"},
		{"tiny", func([]byte) []byte { return []byte("hello\n") }, "shorter than"},
		{"old protocol", func(b []byte) []byte { b[0x206], b[0x207] = 0x0b, 0x02; return b }, "older than 2.12"},
		{"no 64-bit entry", func(b []byte) []byte { b[0x236] &^= xlfKernel64; return b }, "XLF_KERNEL_64"},
		{"zImage", func(b []byte) []byte { b[0x211] = 0; return b }, "LOADED_HIGH"},
		{"bad alignment", func(b []byte) []byte { b[0x230] = 3; return b }, "power of two"},
		{"no boot flag", func(b []byte) []byte { b[0x1fe] = 0; return b }, "boot_flag"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := parseFile(t, writeFile(t, "vmlinuz", c.mutate(fakeBzImage(4096))))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want one containing %q", err, c.want)
			}
		})
	}
}

// cachedKernel extracts the Debian kernel from yakimg's package cache,
// where `yakimg build` unpacks it.
func cachedKernel(t *testing.T) string {
	home, err := os.UserHomeDir()
	if err != nil {
		t.Skipf("no home directory: %v", err)
	}
	tars, _ := filepath.Glob(filepath.Join(home, ".cache/yakimg/unpacked/*.tar"))
	for _, p := range tars {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(f)
		for {
			hdr, err := tr.Next()
			if err != nil {
				break
			}
			if strings.HasPrefix(strings.TrimPrefix(hdr.Name, "./"), "boot/vmlinuz-") {
				data, err := io.ReadAll(tr)
				f.Close()
				if err != nil {
					t.Fatal(err)
				}
				return writeFile(t, "vmlinuz", data)
			}
		}
		f.Close()
	}
	t.Skip("no kernel in ~/.cache/yakimg/unpacked: run `yakimg build` once to fill the package cache")
	return ""
}

func TestParseDebianKernel(t *testing.T) {
	p := cachedKernel(t)
	h, err := parseFile(t, p)
	if err != nil {
		t.Fatal(err)
	}
	if h.Protocol < minProtocol || h.InitSize < 8<<20 || !h.Relocatable {
		t.Errorf("header = %+v", h)
	}
	t.Logf("%s: protocol %s, init_size %d MiB, file %d bytes (header describes %d)", p, h.ProtocolString(), h.InitSize>>20, h.FileSize, h.ImageSize())
	// The same kernel cut short by one byte fails.
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := parseFile(t, writeFile(t, "short", data[:h.ImageSize()-1])); err == nil || !strings.Contains(err.Error(), "truncated") {
		t.Errorf("truncated Debian kernel: %v", err)
	}
}

func TestInitrdFormat(t *testing.T) {
	for head, want := range map[string]string{
		"070701000": "cpio (newc)", "\x28\xb5\x2f\xfd\x00": "zstd", "\x1f\x8b\x08": "gzip",
		"#!/bin/sh": "", "": "",
	} {
		if got := InitrdFormat([]byte(head)); got != want {
			t.Errorf("InitrdFormat(%q) = %q, want %q", head, got, want)
		}
	}
}

func TestHasCapability(t *testing.T) {
	status := []byte("Name:\tx\nCapEff:\t0000000000400000\n")
	if ok, err := HasCapability(status, capSysBoot); !ok || err != nil {
		t.Errorf("CAP_SYS_BOOT set: %v %v", ok, err)
	}
	if ok, err := HasCapability([]byte("CapEff:\t00000000003fffff\n"), capSysBoot); ok || err != nil {
		t.Errorf("CAP_SYS_BOOT clear: %v %v", ok, err)
	}
	if _, err := HasCapability([]byte("Name: x\n"), capSysBoot); err == nil {
		t.Error("no CapEff line: no error")
	}
}

func TestLockdownMode(t *testing.T) {
	if m, err := LockdownMode("[none] integrity confidentiality\n"); m != "none" || err != nil {
		t.Errorf("%q %v", m, err)
	}
	if m, err := LockdownMode("none [integrity] confidentiality\n"); m != "integrity" || err != nil {
		t.Errorf("%q %v", m, err)
	}
	if _, err := LockdownMode("none integrity"); err == nil {
		t.Error("no selected mode: no error")
	}
}

func TestMemoryVerdict(t *testing.T) {
	const mib = 1 << 20
	kernel := int64(52 * mib)
	// 1 GiB guest with the image's 2.6 MB initramfs: fits.
	if c := MemoryVerdict(kernel, 14*mib, 3*mib, Meminfo{Total: 980 * mib, Available: 800 * mib}); c.Status != Pass {
		t.Errorf("1 GiB: %+v", c)
	}
	// 128 MB guest (MemTotal about 100 MiB after the kernel's own): the measured failure.
	if c := MemoryVerdict(kernel, 14*mib, 3*mib, Meminfo{Total: 100 * mib, Available: 70 * mib}); c.Status != Fail || !strings.Contains(c.Detail, "half of RAM") {
		t.Errorf("128 MB: %+v", c)
	}
	// An initrd larger than half of RAM.
	if c := MemoryVerdict(kernel, 14*mib, 600*mib, Meminfo{Total: 980 * mib, Available: 900 * mib}); c.Status != Fail {
		t.Errorf("600 MiB initrd: %+v", c)
	}
	// Fits in half of RAM, but not in what is available now.
	if c := MemoryVerdict(kernel, 14*mib, 3*mib, Meminfo{Total: 980 * mib, Available: 60 * mib}); c.Status != Fail || !strings.Contains(c.Detail, "available") {
		t.Errorf("little available: %+v", c)
	}
}

func TestParseMeminfo(t *testing.T) {
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		t.Skipf("no /proc/meminfo: %v", err)
	}
	m, err := ParseMeminfo(data)
	if err != nil || m.Total <= 0 || m.Available <= 0 || m.Available > m.Total {
		t.Errorf("%+v %v", m, err)
	}
	if _, err := ParseMeminfo([]byte("MemTotal: 10 kB\n")); err == nil {
		t.Error("no MemAvailable: no error")
	}
}

// TestProbeKexecFileLoad runs the real probe: on this host's kernel it
// must give one of the answers the check knows, and never succeed.
func TestProbeKexecFileLoad(t *testing.T) {
	err := ProbeKexecFileLoad()
	if err == nil {
		t.Fatal("kexec_file_load with invalid fds succeeded")
	}
	if !errors.Is(err, unix.EBADF) && !errors.Is(err, unix.ENOSYS) && !errors.Is(err, unix.EPERM) {
		t.Errorf("unexpected errno %v", err)
	}
	c := (system{o: Options{KexecProbe: ProbeKexecFileLoad}}).kexecFileLoad()
	t.Logf("probe: %v → %s: %s", err, c.Status, c.Detail)
	if (c.Status == Pass) != errors.Is(err, unix.EBADF) {
		t.Errorf("verdict %+v for %v", c, err)
	}
}

func TestWriteProbe(t *testing.T) {
	dir := t.TempDir()
	if err := WriteProbe(dir); err != nil {
		t.Fatal(err)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("probe left %v", left)
	}
	if err := WriteProbe(filepath.Join(dir, "missing")); err == nil {
		t.Error("missing dir: no error")
	}
}

// fakeCRIU writes a criu stand-in that answers --version and check like
// CRIU 3.17.1 on a good kernel, or as version.
func fakeCRIU(t *testing.T, version string) string {
	p := writeFile(t, "criu", []byte("#!/bin/sh\ncase \"$1\" in\n--version) echo Version: "+version+";;\ncheck) echo Looks good.;;\nesac\n"))
	if err := os.Chmod(p, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// dryRunOptions points a dry run at temp files and a fake /proc and /sys
// where the kexec interfaces are present, so the verdict depends on the
// inputs under test only.
func dryRunOptions(t *testing.T) Options {
	proc, sys := t.TempDir(), t.TempDir()
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skipf("no /proc/self/status: %v", err)
	}
	if ok, _ := HasCapability(status, capSysBoot); !ok {
		t.Skip("needs CAP_SYS_BOOT: the privileges check would fail")
	}
	files := map[string]string{
		filepath.Join(proc, "self/status"):                    string(status),
		filepath.Join(proc, "cmdline"):                        "console=ttyS0 panic=-1\n",
		filepath.Join(proc, "meminfo"):                        "MemTotal: 1003520 kB\nMemFree: 900000 kB\nMemAvailable: 900000 kB\n",
		filepath.Join(proc, "sys/kernel/kexec_load_disabled"): "0\n",
		filepath.Join(sys, "kernel/kexec_loaded"):             "0\n",
		filepath.Join(sys, "kernel/security/lockdown"):        "[none] integrity confidentiality\n",
	}
	for p, data := range files {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The state dir must not be a tmpfs; the test's temp dir may be one.
	state := filepath.Join(".", "testdata-state-"+strings.ReplaceAll(t.Name(), "/", "-"))
	if err := os.Mkdir(state, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(state) })
	var st unix.Statfs_t
	if err := unix.Statfs(state, &st); err != nil || st.Type == unix.TMPFS_MAGIC {
		t.Skipf("the package directory is on tmpfs (%v)", err)
	}
	return Options{
		Kernel:     writeFile(t, "vmlinuz", fakeBzImage(64<<10)),
		Initrd:     writeFile(t, "initrd", []byte("070701"+strings.Repeat("0", 200))),
		StateDir:   state,
		CRIU:       fakeCRIU(t, "3.17.1"),
		ProcDir:    proc,
		SysDir:     sys,
		KexecProbe: func() error { return unix.EBADF },
	}
}

// failed returns "phase/check" of each failed check.
func failed(d control.KexecData) []string {
	var out []string
	for _, f := range Failures(d) {
		name, _, _ := strings.Cut(f, ":")
		out = append(out, name)
	}
	return out
}

func TestDryRun(t *testing.T) {
	ctx := context.Background()
	t.Run("passes", func(t *testing.T) {
		d := DryRun(ctx, dryRunOptions(t))
		if !d.OK || len(d.Phases) != 7 {
			t.Fatalf("failures %v\n%s", Failures(d), Text(d))
		}
		for i, p := range d.Phases {
			if p.Name != Phases[i] || p.Number != i+1 || len(p.Checks) == 0 {
				t.Errorf("phase %d = %+v", i, p)
			}
		}
		if d.Append != "console=ttyS0 panic=-1" {
			t.Errorf("append = %q", d.Append)
		}
		if !strings.Contains(Text(d), "every phase passed") {
			t.Errorf("text:\n%s", Text(d))
		}
	})
	bigInitrd := func(t *testing.T) string {
		p := writeFile(t, "big", []byte("070701"))
		if err := os.Truncate(p, 600<<20); err != nil { // sparse
			t.Fatal(err)
		}
		return p
	}
	cases := []struct {
		name   string
		mutate func(*testing.T, *Options)
		want   []string
	}{
		{"missing kernel", func(t *testing.T, o *Options) { o.Kernel = "/nonexistent/vmlinuz" }, []string{"validation/kernel"}},
		{"text kernel", func(t *testing.T, o *Options) { o.Kernel = writeFile(t, "k", []byte("hello\n")) }, []string{"validation/kernel"}},
		{"directory kernel", func(t *testing.T, o *Options) { o.Kernel = t.TempDir() }, []string{"validation/kernel"}},
		{"text initrd", func(t *testing.T, o *Options) { o.Initrd = writeFile(t, "i", []byte("hello\n")) }, []string{"validation/initrd"}},
		{"empty initrd", func(t *testing.T, o *Options) { o.Initrd = writeFile(t, "i", nil) }, []string{"validation/initrd"}},
		{"oversized initrd", func(t *testing.T, o *Options) { o.Initrd = bigInitrd(t) }, []string{"load-kernel/memory"}},
		{"long cmdline", func(t *testing.T, o *Options) { o.Append = strings.Repeat("x", 3000) }, []string{"validation/cmdline"}},
		{"criu missing", func(t *testing.T, o *Options) { o.CRIU = "/nonexistent/criu" }, []string{"checkpoint/criu"}},
		{"criu check fails", func(t *testing.T, o *Options) {
			o.CRIU = writeFile(t, "criu", []byte("#!/bin/sh\necho Version: 3.17.1\n[ \"$1\" = check ] && echo Error: kerndat_init failed && exit 1\n"))
			if err := os.Chmod(o.CRIU, 0o755); err != nil {
				t.Fatal(err)
			}
		}, []string{"validate-checkpoints/criu-check"}},
		{"criu too old", func(t *testing.T, o *Options) { o.CRIU = fakeCRIU(t, "2.9") }, []string{"checkpoint/criu"}},
		{"no state dir", func(t *testing.T, o *Options) { o.StateDir = "/nonexistent/checkpoint" }, []string{"pre-kexec-info/state-dir"}},
		{"state dir full", func(t *testing.T, o *Options) { o.CheckpointBytes = 1 << 60 }, []string{"checkpoint/free-space"}},
		{"no syscall", func(t *testing.T, o *Options) { o.KexecProbe = func() error { return unix.ENOSYS } }, []string{"load-kernel/kexec-file-load"}},
		{"lockdown", func(t *testing.T, o *Options) {
			if err := os.WriteFile(filepath.Join(o.SysDir, "kernel/security/lockdown"), []byte("none [integrity] confidentiality\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, []string{"load-kernel/lockdown"}},
		{"no kexec core", func(t *testing.T, o *Options) { os.Remove(filepath.Join(o.SysDir, "kernel/kexec_loaded")) }, []string{"execute/reboot-kexec"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := dryRunOptions(t)
			c.mutate(t, &o)
			d := DryRun(ctx, o)
			if got := failed(d); d.OK || strings.Join(got, " ") != strings.Join(c.want, " ") {
				t.Errorf("failed checks %v, want %v\n%s", got, c.want, Text(d))
			}
		})
	}
}

// TestDryRunTmpfsState: a state dir in memory would lose the manifest.
func TestDryRunTmpfsState(t *testing.T) {
	o := dryRunOptions(t)
	var st unix.Statfs_t
	if err := unix.Statfs("/dev/shm", &st); err != nil || st.Type != unix.TMPFS_MAGIC {
		t.Skip("no tmpfs at /dev/shm")
	}
	dir, err := os.MkdirTemp("/dev/shm", "kexec-state-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	o.StateDir = dir
	d := DryRun(context.Background(), o)
	if got := failed(d); !bytes.Equal([]byte(strings.Join(got, " ")), []byte("persist-manifest/persistent")) {
		t.Errorf("failed %v\n%s", got, Text(d))
	}
}

func TestStateDirFrom(t *testing.T) {
	for line, want := range map[string]string{
		"console=ttyS0 yakiros.checkpoint=/var/ckpt quiet": "/var/ckpt",
		"console=ttyS0":         DefaultStateDir,
		"yakiros.checkpoint= x": DefaultStateDir,
	} {
		if got := StateDirFrom(line); got != want {
			t.Errorf("StateDirFrom(%q) = %q, want %q", line, got, want)
		}
	}
}

// TestLookCRIU: PID 1 has no $PATH; criu is still found where Debian puts it.
func TestLookCRIU(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("PATH", dir)
	if _, err := lookCRIU(); err == nil || !strings.Contains(err.Error(), dir) {
		t.Errorf("empty PATH dir: %v", err)
	}
	fake := fakeCRIU(t, "3.17.1")
	t.Setenv("PATH", filepath.Dir(fake))
	if p, err := lookCRIU(); p != fake || err != nil {
		t.Errorf("lookCRIU = %q, %v; want %s", p, err, fake)
	}
	t.Setenv("PATH", "")
	p, err := lookCRIU()
	if _, serr := exec.LookPath("/usr/sbin/criu"); serr == nil && (p != "/usr/sbin/criu" || err != nil) {
		t.Errorf("without PATH: %q, %v; want /usr/sbin/criu", p, err)
	} else if serr != nil && (err == nil || !strings.Contains(err.Error(), defaultPath)) {
		t.Errorf("without PATH and without criu: %q, %v", p, err)
	}
}
