// Command badsum is a harness guest that sends a report whose done frame
// carries a wrong checksum.
package main

import (
	"yakimg/suites/report"
	"yakimg/vm/testdata/guests/guestlib"
)

func main() {
	guestlib.Setup()
	ch := guestlib.Channel()
	line, err := report.Line(report.KindReport, &report.Report{TestRunID: "harness-badsum"})
	if err != nil {
		guestlib.Fatal(err)
	}
	done, err := report.Line(report.KindDone, report.Done{SHA256: report.Digest([]byte("not the report line"))})
	if err != nil {
		guestlib.Fatal(err)
	}
	for _, l := range [][]byte{line, done} {
		if _, err := ch.Write(append(l, '\n')); err != nil {
			guestlib.Fatal(err)
		}
	}
	guestlib.Drain(ch)
	guestlib.PowerOff()
}
