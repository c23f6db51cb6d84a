// Command silent is a harness guest that powers off cleanly without ever
// writing to the report channel.
package main

import "yakimg/vm/testdata/guests/guestlib"

func main() {
	guestlib.Say("silent: powering off without a report")
	guestlib.PowerOff()
}
