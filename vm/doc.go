// Package vm is the host side of a yakimg boot: it picks an accelerator
// (proving KVM with a short probe boot before trusting it), starts QEMU with
// the console on the first serial port (ttyS0) and the report channel on the
// second (ttyS1), captures both live, decodes the report and classifies how
// the boot ended.
//
// Classification, first match wins:
//
//	QEMU cannot be started                        infra           5
//	trusted report (report + matching done)       passed/failed   0/1
//	"Kernel panic - not syncing" on the console   panic           3
//	corrupt lines, or a report without its done   report-corrupt  6
//	guest watchdog (sentinel) or Config.Timeout   timeout         4
//	the caller's context ended                    infra           5
//	QEMU died by a signal or exited non-zero      infra           5
//	QEMU exited 0 without a report                report-missing  6
//
// QEMU's exit status alone never makes a boot pass. A run that goes on
// after a kexec says hello once per boot; a hello from another image makes
// the channel corrupt.
package vm
