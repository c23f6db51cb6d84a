// Command watchdog is a harness guest that plays stage 1's sentinel: it says
// hello, then reports that its deadline passed and powers off.
package main

import (
	"yakimg/suites/report"
	"yakimg/vm/testdata/guests/guestlib"
)

func main() {
	guestlib.Setup()
	ch := guestlib.Channel()
	w := report.NewWriter(ch)
	if err := w.Hello(report.Hello{Runner: "harness-watchdog"}); err != nil {
		guestlib.Fatal(err)
	}
	if err := w.Sentinel(report.Sentinel{Reason: "suite deadline passed", UptimeS: 1, Diagnostics: "graph-resolver: not started (harness)"}); err != nil {
		guestlib.Fatal(err)
	}
	guestlib.Drain(ch)
	guestlib.PowerOff()
}
