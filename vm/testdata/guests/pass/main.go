// Command pass is a harness guest that runs one suite whose cases pass (and
// one that skips), reports it on the report channel and powers off.
package main

import (
	"golang.org/x/sys/unix"

	"yakimg/suites/report"
	"yakimg/vm/testdata/guests/guestlib"
)

func main() {
	guestlib.Setup()
	guestlib.Say("pass: reporting")
	ch := guestlib.Channel()
	w := report.NewWriter(ch)
	if err := w.Hello(report.Hello{Runner: "harness-pass", ImageDigest: "sha256:harness", Suites: []string{"smoke"}}); err != nil {
		guestlib.Fatal(err)
	}
	suite := &report.SuiteResult{}
	var u unix.Utsname
	sysname := "?"
	if unix.Uname(&u) == nil {
		sysname = unix.ByteSliceToString(u.Sysname[:])
	}
	cases := []report.Case{
		{Name: "kernel-is-linux", Status: report.Pass, DurationMS: 1},
		{Name: "needs-criu", Status: report.Skip, Message: "no CRIU in the harness guest"},
	}
	if sysname != "Linux" {
		cases[0].Status, cases[0].Message = report.Fail, "uname says "+sysname
	}
	for _, c := range cases {
		if err := w.Event(report.Event{Suite: "smoke", Case: c.Name, Status: c.Status, DurationMS: c.DurationMS, Message: c.Message}); err != nil {
			guestlib.Fatal(err)
		}
		suite.Add(c)
	}
	suite.DurationMS = 1
	r := &report.Report{
		YakirosVersion:     "harness",
		TestRunID:          "harness-pass",
		VMConfig:           report.VMConfig{RAMMB: 256, CPUs: 1, OS: "harness guest", Kernel: guestlib.Uname()},
		Image:              report.Image{Digest: "sha256:harness"},
		TestResults:        map[string]*report.SuiteResult{"smoke": suite},
		PerformanceMetrics: map[string]float64{"graph_resolution_ms": 1.5},
	}
	if err := w.Report(r); err != nil {
		guestlib.Fatal(err)
	}
	guestlib.Drain(ch)
	guestlib.PowerOff()
}
