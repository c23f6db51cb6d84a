package suites

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"yakimg/yakiros/control"
)

// kexecSuite checks `graphctl kexec --dry-run` (docs/KEXEC.md): the
// image's own kernel and initramfs, which the root file system keeps in
// /boot, pass every phase; a truncated kernel, a text file, a missing path
// and an initrd larger than half of RAM each fail exactly the check that
// is wrong, naming its phase; a real kexec is refused. Nothing here
// changes the running kernel.
var kexecSuite = Suite{
	Name: "kexec",
	Cases: []Case{
		{Name: "own-kernel-passes", Timeout: 90 * time.Second, Run: kexecOwnKernel},
		{Name: "truncated-kernel-fails-validation", Timeout: 90 * time.Second, Run: kexecTruncatedKernel},
		{Name: "text-file-fails-validation", Timeout: 90 * time.Second, Run: kexecTextFile},
		{Name: "missing-path-fails-validation", Timeout: 90 * time.Second, Run: kexecMissingPath},
		{Name: "oversized-initrd-fails-load-kernel", Timeout: 90 * time.Second, Run: kexecOversizedInitrd},
		{Name: "real-kexec-refused", Run: kexecRefused},
	},
}

const kexecInitramfs = "/boot/initramfs.cpio.zst"

// kexecKernel is the path of the running kernel in the root file system.
func kexecKernel(t *T) string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		t.Fatalf("uname: %v", err)
	}
	return "/boot/vmlinuz-" + unix.ByteSliceToString(u.Release[:])
}

// kexecTempDir makes a directory for a case's files; the case removes it.
func kexecTempDir(t *T) string {
	dir, err := os.MkdirTemp("", "yakimg-kexec-")
	if err != nil {
		t.Fatalf("%v", err)
	}
	return dir
}

// dryRun runs `graphctl --json kexec --dry-run args…` and returns its
// answer and whether graphctl exited 0.
func dryRun(t *T, args ...string) (control.KexecData, bool) {
	start := time.Now()
	out, errOut, err := t.graphctl(append([]string{"--json", "kexec", "--dry-run"}, args...)...)
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("%v", err)
	}
	var d control.KexecData
	if jerr := json.Unmarshal([]byte(out), &d); jerr != nil {
		t.Fatalf("graphctl kexec --dry-run %s: decode %q: %v (stderr %q)", strings.Join(args, " "), out, jerr, errOut)
	}
	if len(d.Phases) != 7 {
		t.Fatalf("%d phases in the answer, want 7: %s", len(d.Phases), out)
	}
	if d.OK != (err == nil) {
		t.Fatalf("answer ok=%v but graphctl exit %v", d.OK, err)
	}
	t.Logf("dry run took %v", time.Since(start).Round(time.Millisecond))
	return d, err == nil
}

// failedChecks lists "phase/check: detail" of every failed check.
func failedChecks(d control.KexecData) []string {
	var out []string
	for _, p := range d.Phases {
		for _, c := range p.Checks {
			if c.Status == "fail" {
				out = append(out, fmt.Sprintf("%s/%s: %s", p.Name, c.Name, c.Detail))
			}
		}
	}
	return out
}

// expectOnly checks that the dry run failed exactly the check want
// ("phase/check") and that its detail contains detail.
func expectOnly(t *T, d control.KexecData, want, detail string) {
	f := failedChecks(d)
	if d.OK || len(f) != 1 || !strings.HasPrefix(f[0], want+": ") || !strings.Contains(f[0], detail) {
		t.Fatalf("failed checks %q; want only %s (…%s…)", f, want, detail)
	}
	t.Logf("%s", f[0])
}

func kexecOwnKernel(t *T) {
	start := time.Now()
	d, ok := dryRun(t, kexecKernel(t), "--initrd", kexecInitramfs)
	t.Metric("kexec_dry_run_ms", float64(time.Since(start).Milliseconds()))
	if !ok {
		t.Fatalf("the image's own kernel failed: %q", failedChecks(d))
	}
	var names []string
	for _, p := range d.Phases {
		names = append(names, p.Name)
		for _, c := range p.Checks {
			if c.Status != "pass" {
				t.Fatalf("%s/%s is %s: %s", p.Name, c.Name, c.Status, c.Detail)
			}
		}
	}
	want := []string{"validation", "pre-kexec-info", "checkpoint", "validate-checkpoints", "persist-manifest", "load-kernel", "execute"}
	if !slices.Equal(names, want) {
		t.Fatalf("phases %q, want %q", names, want)
	}
	// The text table is the same verdict for a human.
	out, _, err := t.graphctl("kexec", "--dry-run", kexecKernel(t), "--initrd", kexecInitramfs)
	if err != nil || !strings.Contains(out, "Verdict: every phase passed") {
		t.Fatalf("text answer: %v\n%s", err, out)
	}
}

func kexecTruncatedKernel(t *T) {
	data, err := os.ReadFile(kexecKernel(t))
	if err != nil {
		t.Fatalf("%v", err)
	}
	dir := kexecTempDir(t)
	defer os.RemoveAll(dir)
	p := filepath.Join(dir, "vmlinuz-truncated")
	if err := os.WriteFile(p, data[:len(data)/2], 0o644); err != nil {
		t.Fatalf("%v", err)
	}
	d, _ := dryRun(t, p, "--initrd", kexecInitramfs)
	expectOnly(t, d, "validation/kernel", "truncated")
}

func kexecTextFile(t *T) {
	d, _ := dryRun(t, "/etc/os-release", "--initrd", kexecInitramfs)
	expectOnly(t, d, "validation/kernel", "not a bzImage")
}

func kexecMissingPath(t *T) {
	d, _ := dryRun(t, "/boot/vmlinuz-missing", "--initrd", kexecInitramfs)
	expectOnly(t, d, "validation/kernel", "no such file or directory")
}

// kexecOversizedInitrd: a sparse cpio as large as RAM cannot be loaded.
func kexecOversizedInitrd(t *T) {
	var si unix.Sysinfo_t
	if err := unix.Sysinfo(&si); err != nil {
		t.Fatalf("sysinfo: %v", err)
	}
	dir := kexecTempDir(t)
	defer os.RemoveAll(dir)
	p := filepath.Join(dir, "initrd-huge")
	if err := os.WriteFile(p, []byte("070701"), 0o644); err != nil {
		t.Fatalf("%v", err)
	}
	if err := os.Truncate(p, int64(si.Totalram)*int64(si.Unit)); err != nil {
		t.Fatalf("%v", err)
	}
	d, _ := dryRun(t, kexecKernel(t), "--initrd", p)
	expectOnly(t, d, "load-kernel/memory", "half of RAM")
}

func kexecRefused(t *T) {
	for args, want := range map[string]string{
		kexecKernel(t):            "refused without --yes",
		"--yes " + kexecKernel(t): "real kexec is not implemented yet",
	} {
		_, errOut, err := t.graphctl(append([]string{"kexec"}, strings.Fields(args)...)...)
		if err == nil || !strings.Contains(errOut, want) {
			t.Fatalf("graphctl kexec %s: %v, stderr %q; want a refusal saying %q", args, err, errOut, want)
		}
	}
}
