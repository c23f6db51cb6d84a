package vm

import (
	"bytes"
	"cmp"
	"compress/gzip"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/u-root/u-root/pkg/cpio"

	"yakimg/suites/report"
)

// The negative harness tests: tiny guests built from testdata/guests boot
// under QEMU TCG with a real Debian kernel, and each way a boot can end is
// shown to be classified as such.

// guestNames are the programs in testdata/guests, each the /init of its own
// initramfs.
var guestNames = []string{"pass", "fail", "panic", "hang", "badsum", "silent", "watchdog", "textpatch"}

// guestDir holds the built guests; TestMain removes it.
var guestDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "yakimg-vm-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	guestDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// testKernel finds the guest kernel or skips.
func testKernel(t testing.TB) string {
	t.Helper()
	if k := os.Getenv("YAKIMG_TEST_KERNEL"); k != "" {
		if _, err := os.Stat(k); err != nil {
			t.Fatalf("YAKIMG_TEST_KERNEL: %v", err)
		}
		return k
	}
	k, err := filepath.Abs(filepath.Join("..", "out", "vmlinuz"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(k); err != nil {
		t.Skipf("no guest kernel: run `make build` (gives out/vmlinuz) or set YAKIMG_TEST_KERNEL to a vmlinuz (e.g. boot/vmlinuz-* of a linux-image-*-cloud-amd64 .deb): %v", err)
	}
	return k
}

func needQEMU(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath(DefaultQEMU); err != nil {
		if os.Getenv("YAKIMG_REQUIRE_IMAGE") == "1" {
			t.Fatalf("make test needs %s: %v", DefaultQEMU, err)
		}
		t.Skipf("needs %s (apt-get install qemu-system-x86): %v", DefaultQEMU, err)
	}
}

var guests struct {
	once sync.Once
	err  error
}

// guestInitrd returns the initramfs of the named guest, building all guests
// on first use.
func guestInitrd(t testing.TB, name string) string {
	t.Helper()
	guests.once.Do(func() { guests.err = buildGuests() })
	if guests.err != nil {
		t.Fatal(guests.err)
	}
	return filepath.Join(guestDir, name+".cpio.gz")
}

func buildGuests() error {
	bin := filepath.Join(guestDir, "bin")
	args := []string{"build", "-trimpath", "-ldflags", "-s -w", "-o", bin + "/"}
	for _, n := range guestNames {
		args = append(args, "./testdata/guests/"+n)
	}
	cmd := exec.Command("go", args...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build guests: %v\n%s", err, out)
	}
	for _, n := range guestNames {
		init, err := os.ReadFile(filepath.Join(bin, n))
		if err != nil {
			return err
		}
		if err := writeInitramfs(filepath.Join(guestDir, n+".cpio.gz"), init); err != nil {
			return fmt.Errorf("pack %s: %w", n, err)
		}
	}
	return nil
}

// writeInitramfs packs init as /init of a gzip'd newc archive with the
// /dev/console the kernel opens for PID 1.
func writeInitramfs(path string, init []byte) error {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	w := cpio.Newc.Writer(zw)
	err := cpio.WriteRecords(w, []cpio.Record{
		cpio.Directory("dev", 0o755),
		cpio.CharDev("dev/console", 0o600, 5, 1),
		cpio.StaticRecord(init, cpio.Info{Name: "init", Mode: cpio.S_IFREG | 0o755}),
	})
	if err == nil {
		err = cpio.WriteTrailer(w)
	}
	if err == nil {
		err = zw.Close()
	}
	if err != nil {
		return err
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}

// harnessBoot is one guest boot and what the harness printed.
type harnessBoot struct {
	*Outcome
	frames  []string // kinds seen by OnFrame, in order
	console string   // the console log file
	stderr  string
}

func bootGuest(t *testing.T, name string, timeout time.Duration) harnessBoot {
	t.Helper()
	return bootGuestWith(t, name, timeout, nil)
}

// bootGuestWith is bootGuest with the Config changed by adjust.
func bootGuestWith(t *testing.T, name string, timeout time.Duration, adjust func(*Config)) harnessBoot {
	t.Helper()
	needQEMU(t)
	kernel := testKernel(t)
	initrd := guestInitrd(t, name)
	var hb harnessBoot
	var stderr bytes.Buffer
	log := filepath.Join(t.TempDir(), "console.log")
	c := Config{
		Kernel:     kernel,
		Initrd:     initrd,
		Append:     "console=ttyS0 panic=-1 quiet",
		MemoryMB:   256,
		CPUs:       1,
		Accel:      AccelTCG,
		Timeout:    timeout,
		ConsoleLog: log,
		OnFrame:    func(kind string, _ report.Frame) { hb.frames = append(hb.frames, kind) },
		Stderr:     &stderr,
	}
	if adjust != nil {
		adjust(&c)
	}
	o, err := Run(context.Background(), c)
	if err != nil {
		t.Fatalf("Run(%s) error: %v", name, err)
	}
	data, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	hb.Outcome, hb.console, hb.stderr = o, string(data), stderr.String()
	if o.Accel != AccelTCG {
		t.Errorf("Run(accel tcg).Accel = %q; want tcg", o.Accel)
	}
	var sum strings.Builder
	o.Summary(&sum)
	t.Logf("guest %s: %s in %v\n%s", name, o.Class, o.Duration.Round(10*time.Millisecond), sum.String())
	return hb
}

// expect checks the class, exit code and a piece of the detail.
func (hb harnessBoot) expect(t *testing.T, class string, exit int, detail string) {
	t.Helper()
	if hb.Class != class || hb.ExitCode != exit || !strings.Contains(hb.Detail, detail) {
		t.Errorf("outcome = %s (exit %d): %q; want %s (exit %d) with %q\nharness:\n%s\nconsole:\n%s",
			hb.Class, hb.ExitCode, hb.Detail, class, exit, detail, hb.stderr, hb.console)
	}
}

const bootTimeout = 120 * time.Second // generous: TCG on a loaded 2-core machine

func TestBootPass(t *testing.T) {
	t.Parallel()
	hb := bootGuest(t, "pass", bootTimeout)
	hb.expect(t, ClassPassed, ExitPass, "1 passed, 1 skipped of 2 cases in 1 suites")
	tr := hb.Transcript
	if tr.Hello == nil || tr.Hello.Runner != "harness-pass" {
		t.Errorf("Hello = %+v; want runner harness-pass", tr.Hello)
	}
	if len(tr.Events) != 2 {
		t.Errorf("got %d events; want 2", len(tr.Events))
	}
	if tr.Report != nil && tr.Report.VMConfig.Accel != AccelTCG {
		t.Errorf("report vm_config.accel = %q; want tcg", tr.Report.VMConfig.Accel)
	}
	if got, want := strings.Join(hb.frames, ","), "hello,event,event,report,done"; got != want {
		t.Errorf("OnFrame saw %s; want %s", got, want)
	}
	if !strings.Contains(hb.console, "harness guest: pass: reporting") {
		t.Errorf("console log lacks the guest's line:\n%s", hb.console)
	}
}

func TestBootFailedCase(t *testing.T) {
	t.Parallel()
	hb := bootGuest(t, "fail", bootTimeout)
	hb.expect(t, ClassFailed, ExitFail, "basic/deliberate: want 2, got 3")
}

func TestBootKernelPanic(t *testing.T) {
	t.Parallel()
	hb := bootGuest(t, "panic", bootTimeout)
	hb.expect(t, ClassPanic, ExitPanic, "Kernel panic - not syncing: Attempted to kill init!")
	// The tail ends at the panic, so that it shows what led to it.
	if n := len(hb.ConsoleTail); n == 0 || !strings.Contains(hb.ConsoleTail[n-1], PanicMarker) {
		t.Errorf("console tail does not end at the panic:\n%s", strings.Join(hb.ConsoleTail, "\n"))
	}
	if !strings.Contains(strings.Join(hb.ConsoleTail, "\n"), "harness guest: panic: PID 1 exits now") {
		t.Errorf("console tail lacks the guest's last words:\n%s", strings.Join(hb.ConsoleTail, "\n"))
	}
	if !strings.Contains(hb.console, "Call Trace") {
		t.Errorf("console log lacks the panic's stack dump:\n%s", hb.console)
	}
}

func TestBootTimeout(t *testing.T) {
	t.Parallel()
	hb := bootGuest(t, "hang", 15*time.Second)
	hb.expect(t, ClassTimeout, ExitTimeout, "no report within 15s")
	// Before the kill the monitor said where the vCPU was, in one line on
	// stderr and in full in the console log.
	if !regexp.MustCompile(`guest state at the timeout: CPU#0 RIP=[0-9a-f]{16} (running|halted)\n`).MatchString(hb.stderr) {
		t.Errorf("stderr lacks the vCPU's state:\n%s", hb.stderr)
	}
	dump := hb.console[strings.Index(hb.console, "--- vm: guest state")+1:]
	for _, want := range []string{"RIP=", "CR3=", "HLT="} {
		if !strings.Contains(dump, want) {
			t.Errorf("console log's guest state lacks %s:\n%s", want, hb.console)
		}
	}
	if !regexp.MustCompile(`(?m)^[0-9a-f]{16}: 0x[0-9a-f]{16} 0x[0-9a-f]{16}$`).MatchString(dump) {
		t.Errorf("console log's guest state lacks the stack words:\n%s", hb.console)
	}
}

func TestBootBadChecksum(t *testing.T) {
	t.Parallel()
	hb := bootGuest(t, "badsum", bootTimeout)
	hb.expect(t, ClassReportCorrupt, ExitReport, "checksum mismatch")
}

func TestBootWithoutReport(t *testing.T) {
	t.Parallel()
	hb := bootGuest(t, "silent", bootTimeout)
	hb.expect(t, ClassReportMissing, ExitReport, "without sending a report")
	if !strings.Contains(hb.console, "harness guest: silent: powering off") {
		t.Errorf("console log lacks the guest's line:\n%s", hb.console)
	}
}

func TestBootGuestWatchdog(t *testing.T) {
	t.Parallel()
	hb := bootGuest(t, "watchdog", bootTimeout)
	hb.expect(t, ClassTimeout, ExitTimeout, "guest watchdog fired after 1s: suite deadline passed")
}

func TestQEMUMissing(t *testing.T) {
	kernel := filepath.Join(t.TempDir(), "vmlinuz")
	if err := os.WriteFile(kernel, []byte("never booted"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, qemu := range []string{"yakimg-no-such-qemu", "/nonexistent/qemu-system-x86_64"} {
		o, err := Run(context.Background(), Config{Kernel: kernel, Accel: AccelTCG, QEMU: qemu})
		if err != nil {
			t.Fatalf("Run(QEMU %s) error: %v", qemu, err)
		}
		if o.ExitCode != ExitInfra || o.Class != ClassInfra || !strings.Contains(o.Detail, "apt-get install qemu-system-x86") {
			t.Errorf("Run(QEMU %s) = %s (exit %d): %q; want infra (exit 5) telling to apt-get install", qemu, o.Class, o.ExitCode, o.Detail)
		}
	}
}

// TestQEMURefusesKernel: QEMU exits non-zero at once, before any guest ran.
func TestQEMURefusesKernel(t *testing.T) {
	needQEMU(t)
	kernel := filepath.Join(t.TempDir(), "vmlinuz")
	if err := os.WriteFile(kernel, []byte("not a kernel"), 0o644); err != nil {
		t.Fatal(err)
	}
	o, err := Run(context.Background(), Config{Kernel: kernel, Accel: AccelTCG, Timeout: bootTimeout})
	if err != nil {
		t.Fatal(err)
	}
	if o.ExitCode != ExitInfra || !strings.Contains(o.Detail, "QEMU exited with status 1") || o.QEMUOutput == "" {
		t.Errorf("outcome = %s (exit %d): %q, QEMU said %q; want infra, status 1 and QEMU's message", o.Class, o.ExitCode, o.Detail, o.QEMUOutput)
	}
}

// TestRunInterrupted: cancelling the context stops QEMU and says so.
func TestRunInterrupted(t *testing.T) {
	t.Parallel()
	needQEMU(t)
	kernel := testKernel(t)
	ctx, cancel := context.WithCancel(context.Background())
	// The hang guest never ends by itself: whenever the cancel lands,
	// only the cancel can stop QEMU.
	time.AfterFunc(2*time.Second, cancel)
	o, err := Run(ctx, Config{
		Kernel: kernel, Initrd: guestInitrd(t, "hang"), Append: "console=ttyS0 panic=-1 quiet",
		MemoryMB: 256, Accel: AccelTCG, Timeout: bootTimeout,
	})
	if err != nil {
		t.Fatal(err)
	}
	if o.ExitCode != ExitInfra || !strings.Contains(o.Detail, "interrupted") {
		t.Errorf("outcome = %s (exit %d): %q; want infra, interrupted", o.Class, o.ExitCode, o.Detail)
	}
}

// BenchmarkBoot measures whole boots (QEMU start to power-off) of the
// harness guests under TCG.
func BenchmarkBoot(b *testing.B) {
	needQEMU(b)
	kernel := testKernel(b)
	for _, name := range []string{"pass", "panic", "silent"} {
		initrd := guestInitrd(b, name)
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				o, err := Run(context.Background(), Config{
					Kernel: kernel, Initrd: initrd, Append: "console=ttyS0 panic=-1 quiet",
					MemoryMB: 256, Accel: AccelTCG, Timeout: bootTimeout,
				})
				if err != nil {
					b.Fatal(err)
				}
				if o.Class == ClassTimeout || o.Class == ClassInfra {
					b.Fatalf("boot of %s: %s: %s", name, o.Class, o.Detail)
				}
			}
		})
	}
}

// TestBootTextPatching boots two vCPUs under TCG with Run's default
// threading and has the guest kernel patch its scheduler's code 400 times
// while both vCPUs run it: it must report, not hang (multi-threaded TCG hangs
// here; see tcgthreads.go). YAKIMG_TEST_TCG_THREADS=multi tries a QEMU's
// multi-threaded TCG instead.
func TestBootTextPatching(t *testing.T) {
	t.Parallel()
	hb := bootGuestWith(t, "textpatch", bootTimeout, func(c *Config) {
		c.CPUs, c.TCGThreads = 2, os.Getenv("YAKIMG_TEST_TCG_THREADS")
	})
	hb.expect(t, ClassPassed, ExitPass, "1 passed")
	if want := cmp.Or(os.Getenv("YAKIMG_TEST_TCG_THREADS"), TCGThreadsSingle); hb.TCGThreads != want {
		t.Errorf("TCGThreads = %q; want %q", hb.TCGThreads, want)
	}
	if r := hb.Transcript.Report; r != nil {
		t.Logf("TCG threads %s: %.0f static key flips/s", hb.TCGThreads, r.PerformanceMetrics["static_key_flips_per_s"])
		if r.VMConfig.CPUs != 2 {
			t.Errorf("the guest saw %d CPUs; want 2", r.VMConfig.CPUs)
		}
	}
}
