package suites

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
)

// graphctl runs the graphctl binary under the case's deadline. err wraps an
// *exec.ExitError when graphctl ran and exited non-zero, which is how it
// reports every error (DESIGN §7).
func (t *T) graphctl(args ...string) (stdout, stderr string, err error) {
	return runGraphctl(t.ctx, t.env.graphctl, args...)
}

func runGraphctl(ctx context.Context, path string, args ...string) (stdout, stderr string, err error) {
	// graphctl writes into unlinked files, not pipes: a pipe needs a
	// goroutine of this process to drain it, and under load (the hot-swap
	// suite's 64 client threads) that goroutine could wait past the
	// WaitDelay of a graphctl that had long ended ("WaitDelay expired
	// before I/O complete").
	outF, err := scratchFile()
	if err != nil {
		return "", "", err
	}
	defer outF.Close()
	errF, err := scratchFile()
	if err != nil {
		return "", "", err
	}
	defer errF.Close()
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Stdout, cmd.Stderr = outF, errF
	runErr := cmd.Run()
	stdout, stderr = readBack(outF), readBack(errF)
	if runErr != nil {
		return stdout, stderr, fmt.Errorf("graphctl %s: %w%s", strings.Join(args, " "), runErr, firstLine(stderr))
	}
	return stdout, stderr, nil
}

// scratchFile is an open file with no name left on disk.
func scratchFile() (*os.File, error) {
	f, err := os.CreateTemp("", "graphctl-out-*")
	if err != nil {
		return nil, fmt.Errorf("graphctl output file: %w", err)
	}
	os.Remove(f.Name())
	return f, nil
}

// readBack is everything written to f so far.
func readBack(f *os.File) string {
	b, _ := io.ReadAll(io.NewSectionReader(f, 0, 1<<40))
	return string(b)
}

// firstLine returns ": " and the first non-empty line of s, or "".
func firstLine(s string) string {
	for l := range strings.Lines(s) {
		if l = strings.TrimSpace(l); l != "" {
			return ": " + l
		}
	}
	return ""
}

// component is one entry of `graphctl --json status`.
type component struct {
	Name     string   `json:"name"`
	Type     string   `json:"type"`
	State    string   `json:"state"`
	PID      int      `json:"pid"`
	UptimeMS int64    `json:"uptime_ms"`
	Restarts int      `json:"restarts"`
	Requires []string `json:"requires"`
	Provides []string `json:"provides"`
	Reason   string   `json:"reason"` // why it is FAILED or stopped

	// Health checks: Health is "" without them, else unknown, ok or
	// failing (docs/HEALTH.md).
	Health         string `json:"health"`
	HealthChecks   int    `json:"health_checks"`
	HealthFailures int    `json:"health_failures"`
	LastCheckMSAgo int64  `json:"last_check_ms_ago"` // -1 when no check has ended
	HealthReason   string `json:"health_reason"`
}

// parseStatus decodes `graphctl --json status`:
// {"components":[{"name":...,"state":...,...}]}.
func parseStatus(data []byte) ([]component, error) {
	var doc struct {
		Components *[]component `json:"components"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("decode status: %w", err)
	}
	if doc.Components == nil {
		return nil, errors.New("decode status: no \"components\" list")
	}
	for i, c := range *doc.Components {
		if c.Name == "" || c.State == "" {
			return nil, fmt.Errorf("decode status: component %d has no name or state", i)
		}
	}
	return *doc.Components, nil
}

func findComponent(cs []component, name string) (component, bool) {
	for _, c := range cs {
		if c.Name == name {
			return c, true
		}
	}
	return component{}, false
}
