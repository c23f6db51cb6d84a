// Command fail is a harness guest whose trusted report holds a failed case.
package main

import (
	"yakimg/suites/report"
	"yakimg/vm/testdata/guests/guestlib"
)

func main() {
	guestlib.Setup()
	ch := guestlib.Channel()
	w := report.NewWriter(ch)
	suite := &report.SuiteResult{}
	for _, c := range []report.Case{
		{Name: "one-plus-one", Status: report.Pass},
		{Name: "deliberate", Status: report.Fail, Message: "want 2, got 3"},
	} {
		if err := w.Event(report.Event{Suite: "basic", Case: c.Name, Status: c.Status, Message: c.Message}); err != nil {
			guestlib.Fatal(err)
		}
		suite.Add(c)
	}
	r := &report.Report{TestRunID: "harness-fail", TestResults: map[string]*report.SuiteResult{"basic": suite}}
	if err := w.Report(r); err != nil {
		guestlib.Fatal(err)
	}
	guestlib.Drain(ch)
	guestlib.PowerOff()
}
