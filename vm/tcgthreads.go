package vm

import (
	"strings"
)

// Multi-threaded TCG (one host thread per vCPU, QEMU's default for x86
// guests) can hang a guest whose kernel rewrites its own code while another
// vCPU runs it. Linux flips static keys by patching instructions
// (text_poke_bp: an int3 first, then the new bytes); under multi-threaded
// TCG a vCPU can be left taking that int3 over and over with interrupts
// off, and the guest stops without a word, or with a soft lockup at the
// patched instruction. In the image this struck at random, whenever the
// first memory cgroup or a component's limits flipped a key.
//
// The textpatch harness guest (TestBootTextPatching) toggles the
// sched_schedstats key while two threads run the scheduler: with QEMU 7.2
// (Debian 12) it hangs at the first flip every time; with QEMU 10.0.2
// (bookworm-backports) in 2 of 5 boots. With the vCPUs on one host thread it
// never hung (11,500 flips in one boot). So that is the default; a guest
// still sees all its vCPUs, they just take turns (docs/VM-TESTING.md, "TCG threads").

// Values of Config.TCGThreads.
const (
	TCGThreadsSingle = "single" // every vCPU on one host thread: slower, does not hang
	TCGThreadsMulti  = "multi"  // one host thread per vCPU: faster, may hang the guest
)

// accelOption is the value of QEMU's -accel for accel. For TCG with more
// than one vCPU it names the threading: single unless c asks for multi.
func accelOption(c Config, accel string) string {
	if accel != AccelTCG || c.CPUs < 2 {
		return accel
	}
	if c.TCGThreads == TCGThreadsMulti {
		return "tcg,thread=multi"
	}
	return "tcg,thread=single"
}

// tcgThreads names the threading of an -accel option: "single", "multi",
// or "" when it does not say (KVM, or TCG with one vCPU).
func tcgThreads(accelOpt string) string {
	for _, t := range []string{TCGThreadsSingle, TCGThreadsMulti} {
		if strings.HasSuffix(accelOpt, ",thread="+t) {
			return t
		}
	}
	return ""
}
