package resolver

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"yakimg/yakiros/control"
	"yakimg/yakiros/kexec"
)

func TestParseKexec(t *testing.T) {
	r, err := parseKexec([]string{"--dry-run", "/boot/vmlinuz", "--initrd", "/boot/initrd", "--append", "console=ttyS0 quiet"})
	if err != nil || !r.dryRun || r.yes || r.kernel != "/boot/vmlinuz" || r.initrd != "/boot/initrd" || r.append != "console=ttyS0 quiet" {
		t.Errorf("%+v %v", r, err)
	}
	if r, err := parseKexec([]string{"/k", "--yes"}); err != nil || !r.yes || r.dryRun || r.kernel != "/k" {
		t.Errorf("%+v %v", r, err)
	}
	for _, args := range [][]string{{"--dry-run"}, {"--dry-run", "/a", "/b"}, {"--bogus", "/a"}, {"/a", "--initrd"}} {
		if _, err := parseKexec(args); err == nil || !strings.Contains(err.Error(), "usage: kexec") {
			t.Errorf("parseKexec(%q) = %v; want a usage error", args, err)
		}
	}
}

func TestKexecCommand(t *testing.T) {
	in := newInstance(t)
	in.start()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"kexec", "/boot/vmlinuz"}, "graphctl: kexec: refused without --yes"},
		{[]string{"kexec", "--yes", "/boot/vmlinuz"}, "graphctl: kexec: not PID 1 (test mode)"},
		{[]string{"kexec-status", "x"}, "graphctl: kexec-status takes no arguments"},
		{[]string{"kexec", "--dry-run"}, "graphctl: kexec: kernel path required"},
	} {
		code, out, errOut := in.ctl(tc.args...)
		if code != 1 || out != "" || !strings.HasPrefix(errOut, tc.want) {
			t.Errorf("graphctl %q = %d, %q, %q; want 1 and %q…", tc.args, code, out, errOut, tc.want)
		}
	}
	// A missing kernel fails the validation phase, by name, and every
	// phase still gets its verdict.
	code, out, errOut := in.ctl("kexec", "--dry-run", "/nonexistent/vmlinuz")
	if code != 1 || !strings.Contains(errOut, "validation/kernel: open /nonexistent/vmlinuz: no such file or directory") ||
		!strings.Contains(out, "1 validation") || !strings.Contains(out, "7 execute") || !strings.Contains(out, "Verdict: FAILED in phase(s) validation") {
		t.Errorf("dry run of a missing kernel = %d\nstdout:\n%s\nstderr: %s", code, out, errOut)
	}
	code, out, _ = in.ctl("--json", "kexec", "--dry-run", "/nonexistent/vmlinuz")
	var d control.KexecData
	if err := json.Unmarshal([]byte(out), &d); code != 1 || err != nil || d.OK || !d.DryRun || len(d.Phases) != 7 ||
		d.Phases[0].Name != "validation" || d.Phases[0].OK || d.Phases[0].Checks[0].Status != "fail" {
		t.Errorf("graphctl --json kexec --dry-run = %d, %v\n%s", code, err, out)
	}
}

// kexecBoot starts graph-resolver with a state directory holding manifest
// (raw bytes) and two services: svc, which the manifest may list, and its
// dependent web. Both must come up whatever the manifest says.
func kexecBoot(t *testing.T, manifest []byte) (*instance, string) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("needs sleep(1)")
	}
	stateDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(stateDir, kexec.ManifestFile), manifest, 0o600); err != nil {
		t.Fatal(err)
	}
	kexecStateDir = stateDir
	t.Cleanup(func() { kexecStateDir = "" })
	in := newInstance(t)
	decl(t, in.dir, "svc.toml", "svc", "service", sleep, []string{"60"}, nil, []string{"svc.up"})
	decl(t, in.dir, "web.toml", "web", "service", sleep, []string{"60"}, []string{"svc.up"}, []string{"web.up"})
	in.start()
	in.waitFor("svc and web active", states(map[string]string{"svc": "ACTIVE", "web": "ACTIVE"}))
	return in, stateDir
}

func kexecStatus(t *testing.T, in *instance) control.KexecStatusData {
	var d control.KexecStatusData
	in.ctlJSON(&d, 0, "kexec-status")
	return d
}

// A truncated manifest, or one of a newer format, is ignored with a log
// line saying why, and the boot is a normal one.
func TestKexecBootIgnoresBadManifest(t *testing.T) {
	good := kexec.Manifest{Version: 1, EntryCount: 1, OldKernelVersion: "6.1.0-old", BootID: "another-boot",
		Entries: []kexec.Entry{{ComponentName: "svc", CheckpointID: "0000000000000000001", OriginalPid: 4000}}}
	b, err := good.Encode()
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		data []byte
		log  string
	}{
		"truncated": {b[:len(b)/2], "kexec manifest unusable: unexpected end of JSON input; booting normally"},
		"newer":     {[]byte(strings.Replace(string(b), `"version": 1`, `"version": 2`, 1)), "kexec manifest of a newer format: version 2, this YakirOS reads version 1; booting normally"},
	} {
		t.Run(name, func(t *testing.T) {
			in, dir := kexecBoot(t, tc.data)
			if want := "post-kexec: ignoring " + filepath.Join(dir, kexec.ManifestFile) + ": " + tc.log; !strings.Contains(in.log.String(), want) {
				t.Errorf("log lacks %q:\n%s", want, in.log)
			}
			if strings.Contains(in.log.String(), "restoring component") {
				t.Errorf("a restore was attempted:\n%s", in.log)
			}
			d := kexecStatus(t, in)
			if d.AfterKexec || d.Ignored == "" || len(d.Services) != 0 {
				t.Errorf("kexec-status %+v; want the manifest ignored", d)
			}
			if code, _, _ := in.ctl("kexec-status"); code != 0 {
				t.Errorf("kexec-status exit %d", code)
			}
		})
	}
}

// A good manifest is used once: removed at boot. A service it lists whose
// checkpoint cannot be restored (here: it does not exist) starts fresh,
// and both the log and kexec-status say so; its dependents come up.
func TestKexecBootRestoreFailureStartsFresh(t *testing.T) {
	m := kexec.Manifest{Version: 1, EntryCount: 1, OldKernelVersion: "6.1.0-old", NewKernelPath: "/boot/vmlinuz-new", BootID: "another-boot",
		Entries: []kexec.Entry{{ComponentName: "svc", CheckpointID: "0000000000000000001", OriginalPid: 4000}},
		Fresh:   []kexec.Skipped{{ComponentName: "web", Reason: "holds a unix socket connected to PID 1's notify socket"}}}
	b, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	in, dir := kexecBoot(t, b)
	if _, err := os.Stat(filepath.Join(dir, kexec.ManifestFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the manifest is still there: %v", err)
	}
	for _, want := range []string{
		"post-kexec: upgraded from kernel 6.1.0-old (boot another-boot) to /boot/vmlinuz-new: 1 services to restore as their requirements come up, 1 start fresh",
		"post-kexec: restoring component 'svc' from checkpoint 0000000000000000001 (pid 4000 before the kexec)",
		"post-kexec: restore of component 'svc' from checkpoint 0000000000000000001 failed: no checkpoint svc/0000000000000000001",
		"; starting it fresh",
	} {
		if !strings.Contains(in.log.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, in.log)
		}
	}
	d := kexecStatus(t, in)
	if !d.AfterKexec || d.OldKernel != "6.1.0-old" || d.OldBootID != "another-boot" || len(d.Services) != 2 {
		t.Fatalf("kexec-status %+v", d)
	}
	if s := d.Services[0]; s.Component != "svc" || s.Outcome != "fresh" || !strings.Contains(s.Reason, "restore failed: no checkpoint") || s.OriginalPid != 4000 {
		t.Errorf("svc: %+v; want fresh after a failed restore", s)
	}
	if s := d.Services[1]; s.Component != "web" || s.Outcome != "fresh" || !strings.Contains(s.Reason, "notify socket") {
		t.Errorf("web: %+v; want fresh, not checkpointed", s)
	}
	_, out, _ := in.ctl("kexec-status")
	if !strings.Contains(out, "This boot followed a live kernel upgrade from kernel 6.1.0-old") || !strings.Contains(out, "svc") {
		t.Errorf("kexec-status text:\n%s", out)
	}
}

func TestKexecStatusNormalBoot(t *testing.T) {
	in := newInstance(t)
	in.start()
	d := kexecStatus(t, in)
	if d.AfterKexec || d.Ignored != "" || d.Services == nil {
		t.Errorf("kexec-status of a normal boot: %+v", d)
	}
}
