// Command hang is a harness guest that never reports: only the host's
// timeout ends it.
package main

import (
	"time"

	"yakimg/vm/testdata/guests/guestlib"
)

func main() {
	guestlib.Say("hang: sleeping forever")
	for {
		// A sleeping loop, not a blocked select: the Go runtime would call
		// a program with every goroutine blocked a deadlock and exit.
		time.Sleep(time.Hour)
	}
}
