// Package suites is the in-guest suite runner, `yakimg-runner suites`. It is
// itself a YakirOS component and checks YakirOS the way an operator would:
// through graphctl, the control socket and the services' own ports. It
// streams one event per finished case to the report channel, writes the
// report, then asks YakirOS to power off.
package suites

import (
	"encoding/json"
	"slices"
	"time"
)

// Suite is a named list of cases, run in order.
type Suite struct {
	Name  string
	Cases []Case
}

// Case is one check. Run reports through its T; returning without Fatalf or
// Skipf is a pass.
type Case struct {
	Name    string
	Timeout time.Duration // zero means defaultTimeout
	Run     func(*T)
	// Resume is the rest of a case whose Run asked for a kexec (T.Kexec):
	// the runner calls it in the next boot with the state Run saved. Its
	// outcome is the case's.
	Resume func(t *T, state json.RawMessage)
}

const defaultTimeout = 30 * time.Second

// registry is what a run may choose from: every suite name the product
// knows, and the suites this build implements.
type registry struct {
	known  []string
	suites []Suite
}

func (r registry) isKnown(name string) bool { return slices.Contains(r.known, name) }

func (r registry) suite(name string) (Suite, bool) {
	for _, s := range r.suites {
		if s.Name == name {
			return s, true
		}
	}
	return Suite{}, false
}

func (r registry) available() []string {
	names := make([]string, len(r.suites))
	for i, s := range r.suites {
		names[i] = s.Name
	}
	return names
}

// builtin is the registry of this build. The order of known is the order of
// DESIGN §3.
var builtin = registry{
	known: []string{"smoke", "basic", "hot-swap", "health-checks", "isolation",
		"graph-analysis", "checkpointing", "kexec", "performance"},
	suites: []Suite{smoke, basic, hotSwap, healthChecks, graphAnalysis, isolation, checkpointing, kexecSuite},
}

// Names lists every suite name the product knows; the host validates
// --suite against it.
func Names() []string { return slices.Clone(builtin.known) }

// Available lists the suites implemented in this build. A known suite that
// is not available runs as one skipped case saying so.
func Available() []string { return builtin.available() }
