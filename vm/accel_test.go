package vm

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestProbeCachesVerdict runs the probe boot for real, with TCG standing in
// for KVM (this host has no usable KVM): the probe kernel must reach its
// root-mount panic, the verdict must land in the cache, and the second call
// must take it from there without booting.
func TestProbeCachesVerdict(t *testing.T) {
	t.Parallel()
	needQEMU(t)
	kernel := testKernel(t)
	cache := t.TempDir()
	var stderr bytes.Buffer
	c := Config{Kernel: kernel, QEMU: DefaultQEMU, CacheDir: cache, Stderr: &stderr}

	v, err := cachedProbe(context.Background(), c, AccelTCG)
	if err != nil {
		t.Fatal(err)
	}
	if !v.Usable || !strings.Contains(v.Detail, "reached its root-mount panic") {
		t.Fatalf("probe(tcg) = usable %v, %q; want usable after the root-mount panic", v.Usable, v.Detail)
	}
	t.Logf("probe(tcg): %s", v.Detail)
	if !strings.Contains(stderr.String(), "vm: probing tcg") {
		t.Errorf("first probe printed %q; want a probing line", stderr.String())
	}
	data, err := os.ReadFile(filepath.Join(cache, ProbeFile))
	if err != nil {
		t.Fatal(err)
	}
	var pc probeCache
	if err := json.Unmarshal(data, &pc); err != nil {
		t.Fatal(err)
	}
	sum, err := fileSHA256(kernel)
	if err != nil {
		t.Fatal(err)
	}
	if len(pc.Verdicts) != 1 || pc.Verdicts[0].KernelSHA256 != sum || pc.Verdicts[0].Accel != AccelTCG ||
		!strings.HasPrefix(pc.Verdicts[0].QEMUVersion, "QEMU emulator version") || pc.Verdicts[0].HostKernel == "" {
		t.Errorf("cache holds %s; want one tcg verdict keyed by host kernel, QEMU version and kernel sha256 %s", data, sum)
	}

	stderr.Reset()
	v2, err := cachedProbe(context.Background(), c, AccelTCG)
	if err != nil {
		t.Fatal(err)
	}
	if !v2.Usable || !strings.Contains(v2.Detail, "cached in") || stderr.Len() != 0 {
		t.Errorf("second probe = usable %v, %q, printed %q; want the cached verdict and no boot", v2.Usable, v2.Detail, stderr.String())
	}
}

// TestProbeRejectsFailingAccelerator: a probe whose boot fails is a verdict
// against the accelerator.
func TestProbeRejectsFailingAccelerator(t *testing.T) {
	needQEMU(t)
	kernel := filepath.Join(t.TempDir(), "vmlinuz")
	if err := os.WriteFile(kernel, []byte("not a kernel"), 0o644); err != nil {
		t.Fatal(err)
	}
	usable, detail := probe(context.Background(), Config{Kernel: kernel, QEMU: DefaultQEMU}, AccelTCG)
	if usable || !strings.Contains(detail, "QEMU exited with status 1 before the probe kernel panicked") {
		t.Errorf("probe(not a kernel) = %v, %q; want unusable, QEMU exited", usable, detail)
	}
}

func kvmOpens() error {
	f, err := os.OpenFile(kvmDevice, os.O_RDWR, 0)
	if err == nil {
		f.Close()
	}
	return err
}

// TestAutoWithoutKVMDevice: without a usable /dev/kvm, auto runs TCG at once.
func TestAutoWithoutKVMDevice(t *testing.T) {
	if err := kvmOpens(); err == nil {
		t.Skipf("%s opens on this host; TestAutoProbesKVM covers auto here", kvmDevice)
	}
	t.Parallel()
	hb := bootAuto(t, t.TempDir())
	if hb.Accel != AccelTCG || !strings.Contains(hb.stderr, "vm: accel auto: tcg (open /dev/kvm") || strings.Contains(hb.stderr, "probing") {
		t.Errorf("auto without KVM ran %s and printed:\n%s\nwant tcg without a probe", hb.Accel, hb.stderr)
	}
	hb.expect(t, ClassPassed, ExitPass, "passed")
}

// TestAutoProbesKVM: with /dev/kvm, auto probes KVM once and then reuses the
// verdict. On kvm-pvm hosts (the project's machines), whose KVM hangs stock
// kernels, the verdict must be TCG.
func TestAutoProbesKVM(t *testing.T) {
	if err := kvmOpens(); err != nil {
		t.Skipf("no usable %s on this host (%v): auto picks tcg without a probe, see TestAutoWithoutKVMDevice", kvmDevice, err)
	}
	t.Parallel()
	cache := t.TempDir()
	first := bootAuto(t, cache)
	if !strings.Contains(first.stderr, "vm: probing kvm") {
		t.Errorf("first auto boot printed:\n%s\nwant a kvm probe", first.stderr)
	}
	if _, err := os.Stat("/sys/module/kvm_pvm"); err == nil && first.Accel != AccelTCG {
		t.Errorf("auto on a kvm-pvm host ran %s; want tcg", first.Accel)
	}
	first.expect(t, ClassPassed, ExitPass, "passed")
	second := bootAuto(t, cache)
	if strings.Contains(second.stderr, "vm: probing") || !strings.Contains(second.stderr, "cached in") || second.Accel != first.Accel {
		t.Errorf("second auto boot ran %s and printed:\n%s\nwant %s from the cached verdict, no probe", second.Accel, second.stderr, first.Accel)
	}
}

func bootAuto(t *testing.T, cache string) harnessBoot {
	t.Helper()
	needQEMU(t)
	var stderr bytes.Buffer
	o, err := Run(context.Background(), Config{
		Kernel: testKernel(t), Initrd: guestInitrd(t, "pass"), Append: "console=ttyS0 panic=-1 quiet",
		MemoryMB: 256, Accel: AccelAuto, Timeout: bootTimeout, CacheDir: cache, Stderr: &stderr,
	})
	if err != nil {
		t.Fatal(err)
	}
	return harnessBoot{Outcome: o, stderr: stderr.String()}
}
