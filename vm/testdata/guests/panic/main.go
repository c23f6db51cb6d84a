// Command panic is a harness guest whose PID 1 exits, which panics the
// kernel ("Attempted to kill init!").
package main

import "yakimg/vm/testdata/guests/guestlib"

func main() {
	guestlib.Say("panic: PID 1 exits now")
}
