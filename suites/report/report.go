// Package report is the contract between the in-guest suite runner and the
// host: the report model (DESIGN §6) and the framing of the report channel,
// the guest's second serial port, where every line is
// "YAKIMG1 <kind> <json>".
package report

import (
	"sort"
	"strings"
)

// Case statuses.
const (
	Pass = "pass"
	Fail = "fail"
	Skip = "skip"
)

// Report is the whole result of one boot.
type Report struct {
	YakirosVersion     string                  `json:"yakiros_version"`
	TestRunID          string                  `json:"test_run_id"`
	VMConfig           VMConfig                `json:"vm_config"`
	Image              Image                   `json:"image"`
	TestResults        map[string]*SuiteResult `json:"test_results"`
	PerformanceMetrics map[string]float64      `json:"performance_metrics"`
}

// VMConfig describes the machine the suites ran on, as the guest saw it.
// Accel is filled in by the host, which alone knows it.
type VMConfig struct {
	RAMMB  int    `json:"ram_mb"`
	CPUs   int    `json:"cpus"`
	OS     string `json:"os"`
	Kernel string `json:"kernel"`
	Accel  string `json:"accel,omitempty"`
	// TCGThreads is "single" or "multi" when TCG ran more than one vCPU:
	// timings differ between the two.
	TCGThreads string `json:"tcg_threads,omitempty"`
	CPUModel   string `json:"cpu_model"`
}

// Image identifies what was booted.
type Image struct {
	Digest     string `json:"digest"`
	LockDigest string `json:"lock_digest"`
}

// SuiteResult is one suite's outcome.
type SuiteResult struct {
	Passed     int    `json:"passed"`
	Failed     int    `json:"failed"`
	Skipped    int    `json:"skipped"`
	DurationMS int64  `json:"duration_ms"`
	Cases      []Case `json:"cases"`
}

// Case is one test case's outcome. A skipped or failed case says why in
// Message.
type Case struct {
	Name       string `json:"name"`
	Status     string `json:"status"`
	DurationMS int64  `json:"duration_ms"`
	Message    string `json:"message"`
}

// Key turns a suite name into its test_results key ("hot-swap" → "hot_swap").
func Key(suite string) string { return strings.ReplaceAll(suite, "-", "_") }

// Add records c in the suite's counters.
func (s *SuiteResult) Add(c Case) {
	s.Cases = append(s.Cases, c)
	switch c.Status {
	case Pass:
		s.Passed++
	case Fail:
		s.Failed++
	default:
		s.Skipped++
	}
}

// Totals sums all suites.
func (r *Report) Totals() (passed, failed, skipped int) {
	for _, s := range r.TestResults {
		passed += s.Passed
		failed += s.Failed
		skipped += s.Skipped
	}
	return
}

// SuiteNames returns the test_results keys in sorted order.
func (r *Report) SuiteNames() []string {
	names := make([]string, 0, len(r.TestResults))
	for n := range r.TestResults {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
