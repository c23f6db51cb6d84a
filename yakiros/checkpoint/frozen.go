package checkpoint

import (
	"context"
	"fmt"
	"path/filepath"
)

// FrozenDumpArgs is the criu command line dumping the process tree of pid
// into dir and leaving it stopped (SIGSTOP) rather than running or ended:
// a live kernel upgrade freezes each service at its checkpoint, so that
// nothing it does afterwards is lost, and lets it run on (SIGCONT) only if
// the upgrade is abandoned.
func FrozenDumpArgs(pid int, dir string) []string {
	return append(DumpArgs(pid, dir, false), "--leave-stopped")
}

// DumpFrozen checkpoints the process tree of pid into dir and leaves it
// stopped. When the dump fails criu lets the tree run on.
func (c CRIU) DumpFrozen(ctx context.Context, pid int, dir string) error {
	if _, err := c.run(ctx, DumpTimeout, filepath.Join(dir, "criu-dump.out"), nil, FrozenDumpArgs(pid, dir)...); err != nil {
		return fmt.Errorf("%w: %s", err, logTail(filepath.Join(dir, DumpLog)))
	}
	return nil
}
