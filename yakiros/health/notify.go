package health

import (
	"context"
	"fmt"
	"strings"
)

// awaitReport takes the latest report of w's process that no earlier check
// took, waiting for one until ctx ends.
func (m *Manager) awaitReport(ctx context.Context, w *watch) (bool, string) {
	for {
		m.mu.Lock()
		r, found := m.reports[w.name]
		m.mu.Unlock()
		if found && r.pid == w.pid && r.seq > w.taken {
			w.taken = r.seq
			return ParseReport(r.line)
		}
		select {
		case <-w.reported:
		case <-ctx.Done():
			return false, fmt.Sprintf("no health report within %v", w.cfg.Timeout)
		}
	}
}

// ParseReport reads one report line: HEALTH=ok and WATCHDOG=1 (the
// keep-alive of sd_notify(3)) pass; HEALTH=fail, HEALTH=fail:<reason> and
// WATCHDOG=trigger fail; anything else fails, saying what was wrong.
func ParseReport(line string) (ok bool, reason string) {
	switch line {
	case "WATCHDOG=1":
		return true, ""
	case "WATCHDOG=trigger":
		return false, line
	}
	if v, found := strings.CutPrefix(line, "HEALTH="); found {
		if ok, detail, valid := verdict(v); valid {
			if !ok && detail == "" {
				detail = line
			}
			return ok, detail
		}
	}
	return false, fmt.Sprintf("unknown report %q: want HEALTH=ok, HEALTH=fail[:reason], WATCHDOG=1 or WATCHDOG=trigger", line)
}
