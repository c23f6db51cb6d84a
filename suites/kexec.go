package suites

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"yakimg/yakiros/checkpoint"
	"yakimg/yakiros/control"
)

// kexecSuite checks `graphctl kexec` (docs/KEXEC.md). The dry run: the
// image's own kernel and initramfs, which the root file system keeps in
// /boot, pass every phase; a truncated kernel, a text file, a missing path
// and an initrd larger than half of RAM each fail exactly the check that
// is wrong, naming its phase. A real kexec without --yes is refused; one
// that cannot validate, or that finds /checkpoint full, is abandoned and
// everything runs on. Last, the real live upgrade: the machine reboots into
// the kernel, test-checkpoint-service comes back as the restored process
// with its memory, and this run resumes in the new boot.
var kexecSuite = Suite{
	Name: "kexec",
	Cases: []Case{
		{Name: "own-kernel-passes", Timeout: 90 * time.Second, Run: kexecOwnKernel},
		{Name: "truncated-kernel-fails-validation", Timeout: 90 * time.Second, Run: kexecTruncatedKernel},
		{Name: "text-file-fails-validation", Timeout: 90 * time.Second, Run: kexecTextFile},
		{Name: "missing-path-fails-validation", Timeout: 90 * time.Second, Run: kexecMissingPath},
		{Name: "oversized-initrd-fails-load-kernel", Timeout: 90 * time.Second, Run: kexecOversizedInitrd},
		{Name: "real-kexec-refused", Timeout: 90 * time.Second, Run: kexecRefused},
		{Name: "full-checkpoint-partition-aborts", Timeout: 150 * time.Second, Run: kexecFullAborts},
		// Last: it reboots the machine.
		{Name: "live-upgrade-restores-service", Timeout: 200 * time.Second, Run: kexecLiveUpgrade, Resume: kexecLiveUpgradeResumed},
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

// kexecRefused: without --yes a real kexec is refused; with it, a kernel
// that fails validation abandons it before anything is checkpointed.
func kexecRefused(t *T) {
	_, errOut, err := t.graphctl("kexec", kexecKernel(t))
	if err == nil || !strings.Contains(errOut, "refused without --yes") {
		t.Fatalf("graphctl kexec without --yes: %v, stderr %q; want a refusal", err, errOut)
	}
	d, errOut := realKexec(t, "/etc/os-release", "--initrd", kexecInitramfs)
	if d.Executing || d.Phase != "validation" || !strings.Contains(errOut, "kexec abandoned in phase validation") ||
		!strings.Contains(errOut, "not a bzImage") || len(d.Checkpointed) != 0 {
		t.Fatalf("kexec --yes of a text file: %+v, stderr %q; want it abandoned in validation", d, errOut)
	}
}

// realKexec runs `graphctl --json kexec --yes args…`, which must fail,
// and returns its answer and message.
func realKexec(t *T, args ...string) (control.KexecRunData, string) {
	out, errOut, err := t.graphctl(append([]string{"--json", "kexec", "--yes"}, args...)...)
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		t.Fatalf("graphctl kexec --yes %s: %v; want it refused (exit 1), stdout %q", strings.Join(args, " "), err, out)
	}
	var d control.KexecRunData
	if jerr := json.Unmarshal([]byte(out), &d); jerr != nil {
		t.Fatalf("graphctl --json kexec --yes: decode %q: %v (stderr %q)", out, jerr, errOut)
	}
	return d, strings.TrimSpace(errOut)
}

// kexecFullAborts fills /checkpoint until the services' checkpoints no
// longer fit: the kexec is abandoned before the kernel is loaded, and the
// service runs on, same process, same memory.
func kexecFullAborts(t *T) {
	c := waitActive(t, ckptComp, 0, 60*time.Second)
	before := freshState(t)
	var st unix.Statfs_t
	if err := unix.Statfs(checkpoint.DefaultDir, &st); err != nil {
		t.Fatalf("statfs: %v", err)
	}
	free := int64(st.Bavail) * st.Bsize
	filler := filepath.Join(checkpoint.DefaultDir, "kexec-suite-filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatalf("%v", err)
	}
	defer os.Remove(filler)
	err = unix.Fallocate(int(f.Fd()), 0, 0, free-256<<10)
	f.Close()
	if err != nil {
		t.Fatalf("fill %s with %d bytes: %v", checkpoint.DefaultDir, free-256<<10, err)
	}
	d, errOut := realKexec(t, kexecKernel(t), "--initrd", kexecInitramfs)
	if d.Executing || d.Phase != "checkpoint" || !strings.Contains(errOut, "free-space") || !strings.Contains(errOut, "every service runs on") {
		t.Fatalf("kexec with /checkpoint full: %+v, stderr %q; want it abandoned in the checkpoint phase for lack of room", d, errOut)
	}
	if _, err := os.Stat(filepath.Join(checkpoint.DefaultDir, "manifest.json")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a manifest was left behind: %v", err)
	}
	after := svcStateOf(t)
	now := waitActive(t, ckptComp, 0, 10*time.Second)
	if now.Pid != c.Pid || after.Pid != c.Pid || after.Counter != before.Counter {
		t.Fatalf("after the abandoned kexec the service is pid %d with %+v; want pid %d with counter %d", now.Pid, after, c.Pid, before.Counter)
	}
	t.Logf("abandoned: %s", errOut)
}

// kexecSaved is what the live upgrade carries into the next boot.
type kexecSaved struct {
	BootID     string  `json:"boot_id"`
	UptimeS    float64 `json:"uptime_s"`
	Pid        int     `json:"pid"`
	Counter    int     `json:"counter"`
	LastAnswer int64   `json:"last_answer_ns"` // wall clock of the last answer before the kexec
}

// kexecLiveUpgrade: the service's counter is moved on, then the machine
// is upgraded to the image's own kernel. The run goes on in the next boot
// with kexecLiveUpgradeResumed.
func kexecLiveUpgrade(t *T) {
	c := waitActive(t, ckptComp, 0, 60*time.Second)
	base := freshState(t).Counter
	for range 3 {
		ckptHTTP(t, http.MethodPost, "/increment", "")
	}
	st := svcStateOf(t)
	last := time.Now()
	if st.Counter != base+3 || st.Pid != c.Pid {
		t.Fatalf("service state %+v; want counter %d in pid %d", st, base+3, c.Pid)
	}
	boot, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Kexec(kexecSaved{BootID: strings.TrimSpace(string(boot)), UptimeS: bootUptime(t), Pid: st.Pid, Counter: st.Counter, LastAnswer: last.UnixNano()},
		kexecKernel(t), "--initrd", kexecInitramfs)
}

func bootUptime(t *T) float64 {
	b, err := os.ReadFile("/proc/uptime")
	if err != nil {
		t.Fatalf("%v", err)
	}
	var up float64
	if _, err := fmt.Sscan(string(b), &up); err != nil {
		t.Fatalf("/proc/uptime %q: %v", b, err)
	}
	return up
}

// kexecLiveUpgradeResumed runs in the new boot: a new kernel (boot id and
// uptime), the service restored with its original pid and its counter
// where it was, re-attached (ACTIVE, capability up, kexec-status says
// restored); its downtime is a metric.
func kexecLiveUpgradeResumed(t *T, raw json.RawMessage) {
	var s kexecSaved
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatalf("saved state %q: %v", raw, err)
	}
	boot, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		t.Fatalf("%v", err)
	}
	if strings.TrimSpace(string(boot)) == s.BootID {
		t.Fatalf("boot id %s unchanged: no new kernel booted", s.BootID)
	}
	// The wall clock came back from the RTC, to the second.
	elapsed := time.Since(time.Unix(0, s.LastAnswer)).Seconds()
	if up := bootUptime(t); up >= elapsed {
		t.Fatalf("uptime %.1f s, yet only %.1f s passed since the kexec was asked for (uptime then %.1f s): the kernel did not restart", up, elapsed, s.UptimeS)
	}
	var first time.Time
	for {
		cl := http.Client{Timeout: 2 * time.Second, Transport: ckptTransport}
		resp, err := cl.Get("http://" + ckptAddr + "/state")
		if err == nil {
			resp.Body.Close()
			first = time.Now()
			break
		}
		if t.ctx.Err() != nil {
			t.Fatalf("the service never answered after the kexec: %v", err)
		}
		sleepCtx(t, 20*time.Millisecond)
	}
	observed := first.Sub(time.Unix(0, s.LastAnswer))
	t.Metric("kexec_observed_downtime_ms", float64(observed.Milliseconds()))
	st := svcStateOf(t)
	if st.Counter != s.Counter || st.Pid != s.Pid {
		t.Fatalf("after the kexec the service is %+v; want the restored pid %d with counter %d", st, s.Pid, s.Counter)
	}
	carriesOn(t, s.Pid, s.Counter, 30*time.Second)
	var d control.KexecStatusData
	if _, err := ckptCmd(t, &d, "kexec-status"); err != nil {
		t.Fatalf("kexec-status: %v", err)
	}
	i := slices.IndexFunc(d.Services, func(x control.KexecServiceState) bool { return x.Component == ckptComp })
	if !d.AfterKexec || d.OldBootID != s.BootID || i < 0 || d.Services[i].Outcome != "restored" || d.Services[i].Pid != s.Pid {
		t.Fatalf("kexec-status %+v; want %s restored as pid %d after boot %s", d, ckptComp, s.Pid, s.BootID)
	}
	// The service was down from the moment its checkpoint stopped it to
	// its first answer in this boot.
	down := first.Sub(time.Unix(0, d.Services[i].FrozenNS))
	if d.Services[i].FrozenNS == 0 || down <= 0 || down > observed {
		t.Fatalf("frozen at %d ns, answered at %d ns, asked for the kexec at %d ns: inconsistent", d.Services[i].FrozenNS, first.UnixNano(), s.LastAnswer)
	}
	t.Metric("kexec_service_downtime_ms", float64(down.Milliseconds()))
	t.Metric("kexec_checkpoint_ms", d.CheckpointMS)
	t.Metric("kexec_restore_ms", d.Services[i].RestoreMS)
	var restored, fresh []string
	for _, x := range d.Services {
		if x.Outcome == "restored" {
			restored = append(restored, x.Component)
		} else {
			fresh = append(fresh, x.Component+" ("+x.Outcome+")")
		}
	}
	t.Logf("boot %s -> %s; counter %d kept in pid %d; down %v from its checkpoint, %v from the last answer before the kexec was asked for (wall clock, to the RTC's second); checkpoints %.0f ms, restore %.0f ms; restored %q, not %q",
		s.BootID, strings.TrimSpace(string(boot)), s.Counter, s.Pid, down.Round(time.Millisecond), observed.Round(time.Millisecond),
		d.CheckpointMS, d.Services[i].RestoreMS, restored, fresh)
}
