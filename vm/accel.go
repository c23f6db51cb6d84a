package vm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"yakimg/internal/atomicfile"
)

const (
	kvmDevice = "/dev/kvm"
	// ProbeFile is the file in Config.CacheDir that remembers probe verdicts.
	ProbeFile = "accel-probe.json"
	// probeTimeout bounds the probe boot. A working accelerator brings the
	// kernel to its root-mount panic in a few seconds; the broken kvm-pvm
	// backend of these machines hangs it for minutes.
	probeTimeout = 20 * time.Second
	// probeAppend makes the kernel panic as soon as it looks for a root
	// file system: there is no initramfs and the root device does not exist.
	probeAppend = "console=ttyS0 panic=-1 rdinit=/yakimg-probe-absent root=/dev/yakimg-probe-absent"
)

// chooseAccel resolves "auto": KVM only when its device opens and a probe
// boot of the same kernel has proven it, TCG otherwise. It prints one line
// saying what it chose and why.
func chooseAccel(ctx context.Context, c Config) string {
	if c.Accel != AccelAuto {
		return c.Accel
	}
	f, err := os.OpenFile(kvmDevice, os.O_RDWR, 0)
	if err != nil {
		fmt.Fprintf(c.Stderr, "vm: accel auto: tcg (%v)\n", err)
		return AccelTCG
	}
	f.Close()
	v, err := cachedProbe(ctx, c, AccelKVM)
	if err != nil {
		fmt.Fprintf(c.Stderr, "vm: accel auto: tcg (kvm probe: %v)\n", err)
		return AccelTCG
	}
	if !v.Usable {
		fmt.Fprintf(c.Stderr, "vm: accel auto: tcg (kvm unusable: %s)\n", v.Detail)
		return AccelTCG
	}
	fmt.Fprintf(c.Stderr, "vm: accel auto: kvm (%s)\n", v.Detail)
	return AccelKVM
}

// probeKey is what a probe verdict depends on.
type probeKey struct {
	HostKernel   string `json:"host_kernel"`
	QEMUVersion  string `json:"qemu_version"`
	KernelSHA256 string `json:"kernel_sha256"`
	Accel        string `json:"accel"`
}

// probeVerdict is one remembered probe result.
type probeVerdict struct {
	probeKey
	Usable bool   `json:"usable"`
	Detail string `json:"detail"`
}

type probeCache struct {
	Verdicts []probeVerdict `json:"verdicts"`
}

// cachedProbe returns the verdict for accel with c's QEMU and kernel on this
// host, probing only when CacheDir has no verdict for exactly that key.
func cachedProbe(ctx context.Context, c Config, accel string) (probeVerdict, error) {
	key, err := newProbeKey(c, accel)
	if err != nil {
		return probeVerdict{}, err
	}
	path := filepath.Join(c.CacheDir, ProbeFile)
	var cache probeCache
	if c.CacheDir != "" {
		if cache, err = loadProbeCache(path); err != nil {
			// A damaged cache costs one probe, nothing more.
			fmt.Fprintf(c.Stderr, "vm: ignoring probe cache: %v\n", err)
		}
		for _, v := range cache.Verdicts {
			if v.probeKey == key {
				v.Detail += " [cached in " + path + "]"
				return v, nil
			}
		}
	}
	fmt.Fprintf(c.Stderr, "vm: probing %s with a short boot of %s (at most %v)\n", accel, c.Kernel, probeTimeout)
	v := probeVerdict{probeKey: key}
	v.Usable, v.Detail = probe(ctx, c, accel)
	if ctx.Err() != nil {
		// An interrupted probe proves nothing; do not remember it.
		return v, fmt.Errorf("interrupted: %w", ctx.Err())
	}
	if c.CacheDir == "" {
		return v, nil
	}
	kept := cache.Verdicts[:0]
	for _, old := range cache.Verdicts {
		if old.probeKey != key {
			kept = append(kept, old)
		}
	}
	cache.Verdicts = append(kept, v)
	if err := saveProbeCache(path, cache); err != nil {
		fmt.Fprintf(c.Stderr, "vm: probe verdict not cached: %v\n", err)
	}
	return v, nil
}

// probe boots c's kernel alone under accel and calls the accelerator usable
// when the kernel reaches its root-mount panic before probeTimeout.
func probe(ctx context.Context, c Config, accel string) (usable bool, detail string) {
	p := Config{
		Kernel:   c.Kernel,
		Append:   probeAppend,
		MemoryMB: 256,
		CPUs:     1,
		Machine:  DefaultMachine,
		Timeout:  probeTimeout,
		QEMU:     c.QEMU,
		Stderr:   io.Discard,
	}
	b := boot(ctx, p, accel, nil)
	switch {
	case b.obs.panicLine != "":
		return true, fmt.Sprintf("probe kernel reached its root-mount panic in %.1fs", b.duration.Seconds())
	case b.obs.startErr != nil:
		return false, fmt.Sprintf("start QEMU: %v", b.obs.startErr)
	case b.obs.killed != "":
		return false, fmt.Sprintf("probe kernel did not reach its root-mount panic within %v", probeTimeout)
	default:
		return false, fmt.Sprintf("QEMU exited with status %d before the probe kernel panicked%s", b.obs.exitCode, suffix(b.obs.qemuLastErr))
	}
}

func newProbeKey(c Config, accel string) (probeKey, error) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return probeKey{}, fmt.Errorf("uname: %w", err)
	}
	out, err := exec.Command(c.QEMU, "--version").Output()
	if err != nil {
		return probeKey{}, fmt.Errorf("%s --version: %w", c.QEMU, err)
	}
	sum, err := fileSHA256(c.Kernel)
	if err != nil {
		return probeKey{}, err
	}
	return probeKey{
		HostKernel:   unix.ByteSliceToString(u.Release[:]),
		QEMUVersion:  strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0]),
		KernelSHA256: sum,
		Accel:        accel,
	}, nil
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("hash %s: %w", path, err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hash %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func loadProbeCache(path string) (probeCache, error) {
	var c probeCache
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return c, err
	}
	if err := json.Unmarshal(data, &c); err != nil {
		return probeCache{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// saveProbeCache writes atomically, so that a concurrent boot reads either
// the old or the new cache.
func saveProbeCache(path string, c probeCache) error {
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return atomicfile.WriteFile(path, append(data, '\n'))
}
