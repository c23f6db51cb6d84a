package vm

import (
	"bytes"
	"strings"
	"testing"

	"yakimg/suites/report"
)

// resumedRun runs the guest's side of a run resumed after a kexec through the
// host's reader: a hello per boot, from images digest1 and digest2.
func resumedRun(t *testing.T, digest1, digest2 string, withReport bool) (*report.Transcript, []string) {
	t.Helper()
	var buf bytes.Buffer
	w := report.NewWriter(&buf)
	w.Hello(report.Hello{Runner: "v1", ImageDigest: digest1, Suites: []string{"smoke", "kexec"}})
	w.Event(report.Event{Suite: "smoke", Case: "boots", Status: report.Pass})
	// The kexec: the second boot's runner says hello again and goes on.
	w.Hello(report.Hello{Runner: "v1", ImageDigest: digest2, Suites: []string{"smoke", "kexec"}, Resumed: true})
	if withReport {
		w.Event(report.Event{Suite: "kexec", Case: "live-upgrade", Status: report.Pass})
		w.Report(sampleReport(false))
	}
	var dec report.Decoder
	var kinds []string
	readFrames(&buf, &dec, func(kind string, _ report.Frame) { kinds = append(kinds, kind) }, make(chan struct{}, 1))
	return &dec.T, kinds
}

func TestTwoHellosOneReport(t *testing.T) {
	tr, kinds := resumedRun(t, "sha256:aaaa", "sha256:aaaa", true)
	if got := strings.Join(kinds, ","); got != "hello,event,hello,event,report,done" {
		t.Errorf("frames %s", got)
	}
	if !tr.Trusted() || tr.Hellos != 2 || !tr.Hello.Resumed || len(tr.Events) != 2 {
		t.Fatalf("transcript %+v; want trusted, two hellos, the last resumed", tr)
	}
	class, detail := classify(observation{transcript: tr})
	if class != ClassPassed {
		t.Errorf("classify = %s: %s; want passed", class, detail)
	}
}

// A second hello from another image is not the same run: the channel
// cannot be trusted.
func TestHelloFromAnotherImageIsCorrupt(t *testing.T) {
	tr, _ := resumedRun(t, "sha256:aaaa", "sha256:bbbb", true)
	class, detail := classify(observation{transcript: tr})
	if class != ClassReportCorrupt || !strings.Contains(detail, "hello from image sha256:bbbb after one from image sha256:aaaa") {
		t.Errorf("classify = %s: %s; want report-corrupt naming both images", class, detail)
	}
}

// A guest that stops after the kexec says how far it got.
func TestResumedRunWithoutReport(t *testing.T) {
	var buf bytes.Buffer
	w := report.NewWriter(&buf)
	w.Hello(report.Hello{Runner: "v1", ImageDigest: "sha256:aaaa"})
	w.Hello(report.Hello{Runner: "v1", ImageDigest: "sha256:aaaa", Resumed: true})
	tr, err := report.Decode(&buf)
	if err != nil {
		t.Fatal(err)
	}
	class, detail := classify(observation{transcript: tr})
	if class != ClassReportMissing || !strings.Contains(detail, "it said hello 2 times") {
		t.Errorf("classify = %s: %s", class, detail)
	}
}
