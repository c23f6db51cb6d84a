package suites

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"yakimg/internal/atomicfile"
	"yakimg/suites/report"
	"yakimg/yakiros/kexec"
)

// A case may ask for a live kernel upgrade (T.Kexec). The runner is a
// oneshot, not checkpointed: before the kexec it saves its progress to a
// file on the persistent state directory, and when YakirOS starts it again
// in the next boot it finds the file, says hello again, runs the rest of
// that case (Case.Resume), the cases and suites after it, and writes the
// one report.

// StateFile is the runner's saved progress, in the kexec state directory.
const StateFile = "yakimg-runner.json"

// resumeVersion is the format of the state file.
const resumeVersion = 1

// kexecRebootWait is how long a case that got a kexec accepted waits for
// the reboot before it gives up (a variable: the tests have no reboot to
// wait for).
var kexecRebootWait = 60 * time.Second

// resumeState is the state file.
type resumeState struct {
	Version   int      `json:"version"`
	BootID    string   `json:"boot_id"`     // the boot that saved it
	TestRunID string   `json:"test_run_id"` // the run's id: its first boot's
	Suites    []string `json:"suites"`
	Suite     int      `json:"suite"` // index in Suites of the suite of the case that asked
	Case      int      `json:"case"`  // that case's index in its suite
	SuiteNS   int64    `json:"suite_start_ns"`
	CaseNS    int64    `json:"case_start_ns"`
	ExitCode  int      `json:"exit_code"`
	// Results holds the finished suites and the cases of the current one
	// so far.
	Results   map[string]*report.SuiteResult `json:"results"`
	Metrics   map[string]float64             `json:"metrics"`
	CaseState json.RawMessage                `json:"case_state"`
}

// statePath is the state file's path: --state, else StateFile in the
// state directory the kernel command line names.
func statePath(o options) (string, error) {
	if o.state != "" {
		return o.state, nil
	}
	cmdline, err := os.ReadFile(o.cmdline)
	if err != nil {
		return "", fmt.Errorf("state file: read kernel command line: %w", err)
	}
	return filepath.Join(kexec.StateDirFrom(string(cmdline)), StateFile), nil
}

// loadResume reads and removes the state file: a run is resumed at most
// once. It returns nil when there is nothing to resume.
func (r *runner) loadResume() *resumeState {
	if r.statePath == "" {
		return nil
	}
	b, err := os.ReadFile(r.statePath)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err == nil {
		err = atomicfile.RemoveDurable(r.statePath)
	}
	if err != nil {
		r.logErr(fmt.Errorf("resume: %w; starting a new run", err))
		return nil
	}
	var s resumeState
	now, _ := bootID()
	switch err := json.Unmarshal(b, &s); {
	case err != nil:
		r.logErr(fmt.Errorf("resume: %s: %w; starting a new run", r.statePath, err))
		return nil
	case s.Version != resumeVersion:
		r.logErr(fmt.Errorf("resume: %s has format %d, not %d; starting a new run", r.statePath, s.Version, resumeVersion))
		return nil
	case s.BootID == now:
		r.logErr(fmt.Errorf("resume: %s was saved in this boot (no kexec followed); starting a new run", r.statePath))
		return nil
	case s.Suite < 0 || s.Suite >= len(s.Suites) || s.Case < 0 || s.Results == nil:
		r.logErr(fmt.Errorf("resume: %s points at suite %d case %d of %d suites; starting a new run", r.statePath, s.Suite, s.Case, len(s.Suites)))
		return nil
	}
	return &s
}

// resume takes over the saved run: its suites, results, metrics and id;
// it returns where to go on.
func (r *runner) resume(s *resumeState) position {
	fmt.Fprintf(r.stdout, "resuming the run of boot %s after a kexec: suite %s, case %d\n", s.BootID, s.Suites[s.Suite], s.Case)
	r.o.suites, r.code = s.Suites, s.ExitCode
	r.rep.TestRunID = s.TestRunID
	r.rep.TestResults = s.Results
	for name, v := range s.Metrics {
		r.metrics.set(name, v)
	}
	key := report.Key(s.Suites[s.Suite])
	res := s.Results[key]
	delete(s.Results, key) // runSuite puts it back, finished
	if res == nil {
		res = &report.SuiteResult{Cases: []report.Case{}}
	}
	return position{suite: s.Suite, kase: s.Case, resumed: s.CaseState, res: res,
		suiteStart: time.Unix(0, s.SuiteNS), caseStart: time.Unix(0, s.CaseNS)}
}

// resumeCase runs the Resume half of the case that asked for the kexec.
// Its duration counts from its start in the previous boot.
func (r *runner) resumeCase(ctx context.Context, e env, c Case, from position) report.Case {
	half := Case{Name: c.Name, Timeout: c.Timeout, Run: func(t *T) {
		if c.Resume == nil {
			t.Fatalf("the case asked for a kexec but has no Resume half")
		}
		c.Resume(t, from.resumed)
	}}
	rc := runCase(ctx, e, half)
	rc.DurationMS = time.Since(from.caseStart).Milliseconds()
	return rc
}

// requestKexec saves the run's progress with the case's state, then asks
// YakirOS for the kexec. It returns once graphctl has answered: nil means
// the reboot into the new kernel follows.
func (r *runner) requestKexec(t *T, caseState any, args []string) error {
	if r.statePath == "" {
		return errors.New("no state file to resume from: the kernel command line was unreadable")
	}
	cs, err := json.Marshal(caseState)
	if err != nil {
		return fmt.Errorf("encode the case's state: %w", err)
	}
	boot, err := bootID()
	if err != nil {
		return err
	}
	results := map[string]*report.SuiteResult{}
	for k, v := range r.rep.TestResults {
		results[k] = v
	}
	results[report.Key(r.o.suites[r.at.suite])] = r.res
	s := resumeState{Version: resumeVersion, BootID: boot, TestRunID: r.rep.TestRunID, Suites: r.o.suites,
		Suite: r.at.suite, Case: r.at.kase, SuiteNS: r.suiteStart.UnixNano(), CaseNS: r.caseStart.UnixNano(),
		ExitCode: r.code, Results: results, Metrics: r.metrics.snapshot(), CaseState: cs}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("encode the run's state: %w", err)
	}
	if err := atomicfile.WriteDurable(r.statePath, b); err != nil {
		return fmt.Errorf("save the run's state: %w", err)
	}
	_, errOut, err := t.graphctl(append([]string{"kexec", "--yes"}, args...)...)
	if err != nil {
		if rerr := atomicfile.RemoveDurable(r.statePath); rerr != nil {
			r.logErr(rerr)
		}
		return fmt.Errorf("%w (%s)", err, firstLine(errOut))
	}
	return nil
}

// cancelKexec removes the state file of a kexec that did not happen.
func (r *runner) cancelKexec() error { return atomicfile.RemoveDurable(r.statePath) }

// Kexec asks YakirOS for a live kernel upgrade (`graphctl kexec --yes
// args…`) once the run's progress and state (the case's, JSON-encoded)
// are saved. It does not return when the reboot follows: the run goes on
// in the next boot with the case's Resume half, given state. A refused
// kexec fails the case; so does one accepted without a reboot within
// kexecRebootWait.
func (t *T) Kexec(state any, args ...string) {
	if t.env.kexec == nil {
		t.Fatalf("this run cannot resume after a kexec")
	}
	if err := t.env.kexec(t, state, args); err != nil {
		t.Fatalf("kexec: %v", err)
	}
	select {
	case <-time.After(kexecRebootWait):
	case <-t.ctx.Done():
	}
	if err := t.env.cancel(); err != nil {
		t.Logf("%v", err)
	}
	t.Fatalf("the kexec was accepted but the machine did not reboot within %v", kexecRebootWait)
}
