package suites

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"yakimg/suites/report"
)

// kexecRegistry has a suite whose middle case asks for a kexec.
var kexecRegistry = registry{
	known: []string{"alpha", "kx", "gamma"},
	suites: []Suite{
		{Name: "alpha", Cases: []Case{{Name: "passes", Run: func(t *T) {}}}},
		{Name: "kx", Cases: []Case{
			{Name: "before", Run: func(t *T) { t.Metric("m_before", 1) }},
			{Name: "up", Run: func(t *T) {
				t.Metric("m_up", 7)
				t.Kexec(map[string]int{"n": 41}, "/boot/vmlinuz", "--initrd", "/boot/initrd")
			}, Resume: func(t *T, state json.RawMessage) {
				var s map[string]int
				if err := json.Unmarshal(state, &s); err != nil || s["n"] != 41 {
					t.Fatalf("state %s: %v", state, err)
				}
				t.Metric("m_resumed", 8)
				t.Logf("resumed with %d", s["n"])
			}},
			{Name: "after", Run: func(t *T) {}},
		}},
		{Name: "gamma", Cases: []Case{{Name: "passes", Run: func(t *T) {}}}},
	},
}

type kexecRun struct {
	code           int
	stdout, stderr string
	tr             *report.Transcript
}

// runKexec runs the runner over kexecRegistry with the state file state
// and graphctl g.
func runKexec(t *testing.T, state, g string) kexecRun {
	t.Helper()
	dir := t.TempDir()
	channel, image := filepath.Join(dir, "ttyS1"), filepath.Join(dir, "image.json")
	writeFile(t, channel, "")
	writeFile(t, image, `{"yakiros_version":"v0.0.0-test","image_digest":"sha256:aaaa","lock_digest":"sha256:bbbb","os":"Debian 12 (bookworm)"}`)
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"--channel", channel, "--image-info", image, "--graphctl", g, "--state", state,
		"--no-poweroff", "--suite", "alpha,kx,gamma"}, &stdout, &stderr, kexecRegistry)
	data, err := os.ReadFile(channel)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := report.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	return kexecRun{code: code, stdout: stdout.String(), stderr: stderr.String(), tr: tr}
}

func eventNames(tr *report.Transcript) []string {
	var out []string
	for _, e := range tr.Events {
		out = append(out, e.Suite+"/"+e.Case+":"+e.Status)
	}
	return out
}

// A case's kexec saves the run (the fake graphctl keeps a copy of what was
// saved, since no reboot follows here); the next boot's runner resumes it:
// hello again, the case's Resume half, the rest, one report with every
// result and metric of both boots.
func TestKexecResume(t *testing.T) {
	defer func(d time.Duration) { kexecRebootWait = d }(kexecRebootWait)
	kexecRebootWait = 50 * time.Millisecond
	dir := t.TempDir()
	state, saved, log := filepath.Join(dir, "runner.json"), filepath.Join(dir, "saved.json"), filepath.Join(dir, "graphctl.log")
	g := fakeGraphctl(t, `echo "$*" >>`+log+`; case "$1" in kexec) cp `+state+` `+saved+`;; esac`+"\n")

	first := runKexec(t, state, g)
	calls, _ := os.ReadFile(log)
	if string(calls) != "kexec --yes /boot/vmlinuz --initrd /boot/initrd\n" {
		t.Errorf("graphctl calls %q", calls)
	}
	if got := eventNames(first.tr); !slices.Contains(got, "kx/up:fail") || !strings.Contains(first.tr.Events[2].Message, "did not reboot") {
		t.Errorf("without a reboot the case must fail saying so: %v %+v", got, first.tr.Events)
	}
	if _, err := os.Stat(state); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state file left after a kexec that did not happen: %v", err)
	}

	// The reboot: the saved state is back, from another boot.
	b, err := os.ReadFile(saved)
	if err != nil {
		t.Fatalf("graphctl kexec ran before the state was saved: %v", err)
	}
	var s resumeState
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	if s.Suite != 1 || s.Case != 1 || s.Results["alpha"].Passed != 1 || len(s.Results["kx"].Cases) != 1 || s.Metrics["m_up"] != 7 {
		t.Fatalf("saved state %s", b)
	}
	runID := s.TestRunID
	s.BootID, s.TestRunID = "boot-before-kexec", "run-of-boot-1"
	b, _ = json.Marshal(s)
	writeFile(t, state, string(b))

	second := runKexec(t, state, g)
	if second.code != 0 {
		t.Errorf("exit %d; stderr:\n%s", second.code, second.stderr)
	}
	tr := second.tr
	if !tr.Trusted() || tr.Hellos != 1 || !tr.Hello.Resumed || !slices.Equal(tr.Hello.Suites, []string{"alpha", "kx", "gamma"}) {
		t.Fatalf("resumed transcript: trusted %v, hello %+v", tr.Trusted(), tr.Hello)
	}
	if got, want := eventNames(tr), []string{"kx/up:pass", "kx/after:pass", "gamma/passes:pass"}; !slices.Equal(got, want) {
		t.Errorf("events after the kexec %v; want %v", got, want)
	}
	rep := tr.Report
	kx := rep.TestResults["kx"]
	if rep.TestRunID != "run-of-boot-1" || rep.TestResults["alpha"].Passed != 1 || rep.TestResults["gamma"].Passed != 1 ||
		kx.Passed != 3 || kx.Failed != 0 || kx.Cases[1].Name != "up" || kx.Cases[1].Message != "resumed with 41" {
		t.Errorf("report %+v, kx %+v (run id of boot 1 was %s)", rep, kx, runID)
	}
	if rep.PerformanceMetrics["m_before"] != 1 || rep.PerformanceMetrics["m_up"] != 7 || rep.PerformanceMetrics["m_resumed"] != 8 {
		t.Errorf("metrics %v; want those of both boots", rep.PerformanceMetrics)
	}
	if !strings.Contains(second.stdout, "resuming the run of boot boot-before-kexec after a kexec: suite kx, case 1") {
		t.Errorf("stdout:\n%s", second.stdout)
	}
	if _, err := os.Stat(state); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state file left after the resume: %v", err)
	}
}

// A refused kexec fails the case with graphctl's message and leaves no
// state behind; the run goes on.
func TestKexecRefusedFailsTheCase(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "runner.json")
	g := fakeGraphctl(t, `case "$1" in kexec) echo 'graphctl: kexec abandoned in phase checkpoint: no room' >&2; exit 1;; esac`+"\n")
	r := runKexec(t, state, g)
	got := eventNames(r.tr)
	if r.code != 1 || !slices.Equal(got, []string{"alpha/passes:pass", "kx/before:pass", "kx/up:fail", "kx/after:pass", "gamma/passes:pass"}) ||
		!strings.Contains(r.tr.Events[2].Message, "kexec abandoned in phase checkpoint: no room") {
		t.Errorf("exit %d, events %v %+v", r.code, got, r.tr.Events)
	}
	if _, err := os.Stat(state); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state file left: %v", err)
	}
}

// A state file saved in this very boot, or unreadable, is not resumed
// from: a new run, and the file is gone.
func TestStaleStateIsNotResumed(t *testing.T) {
	boot, err := bootID()
	if err != nil {
		t.Skipf("no boot id here: %v", err)
	}
	defer func(d time.Duration) { kexecRebootWait = d }(kexecRebootWait)
	kexecRebootWait = 50 * time.Millisecond
	for name, content := range map[string]string{
		"same boot": `{"version":1,"boot_id":"` + boot + `","suites":["gamma"],"suite":0,"case":0,"results":{}}`,
		"garbage":   `{"version":1,"boot_id":`,
		"newer":     `{"version":2,"boot_id":"x","suites":["gamma"],"suite":0,"case":0,"results":{}}`,
	} {
		t.Run(name, func(t *testing.T) {
			state := filepath.Join(t.TempDir(), "runner.json")
			writeFile(t, state, content)
			r := runKexec(t, state, fakeGraphctl(t, "exit 0\n"))
			if r.tr.Hello == nil || r.tr.Hello.Resumed || len(r.tr.Events) != 5 || !strings.Contains(r.stderr, "starting a new run") {
				t.Errorf("hello %+v, %d events, stderr %q; want a new run", r.tr.Hello, len(r.tr.Events), r.stderr)
			}
			if _, err := os.Stat(state); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("state file left: %v", err)
			}
		})
	}
}
