package suites

import (
	"slices"
	"testing"

	"yakimg/yakiros/control"
)

func TestFailedChecks(t *testing.T) {
	d := control.KexecData{Phases: []control.KexecPhase{
		{Number: 1, Name: "validation", Checks: []control.KexecCheck{
			{Name: "kernel", Status: "fail", Detail: "truncated"},
			{Name: "initrd", Status: "pass", Detail: "none given"},
		}},
		{Number: 6, Name: "load-kernel", Checks: []control.KexecCheck{
			{Name: "memory", Status: "skip", Detail: "needs a valid kernel"},
			{Name: "lockdown", Status: "fail", Detail: "integrity"},
		}},
	}}
	if got, want := failedChecks(d), []string{"validation/kernel: truncated", "load-kernel/lockdown: integrity"}; !slices.Equal(got, want) {
		t.Errorf("failedChecks = %q, want %q", got, want)
	}
}
