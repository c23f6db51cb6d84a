package resolver

import (
	"encoding/json"
	"strings"
	"testing"

	"yakimg/yakiros/control"
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
		{[]string{"kexec", "--yes", "/boot/vmlinuz"}, "graphctl: kexec: real kexec is not implemented yet"},
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
