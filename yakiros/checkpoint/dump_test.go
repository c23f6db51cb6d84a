package checkpoint

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// fakeDumper is a criu that fails its first `fails` dumps with the error
// line given, counting its runs in dir/runs.
func fakeDumper(t *testing.T, fails int, errLine string) (CRIU, string) {
	t.Helper()
	dir := t.TempDir()
	script := `#!/bin/sh
while [ $# -gt 0 ]; do [ "$1" = -D ] && dir=$2; shift; done
n=$(cat "$dir/runs" 2>/dev/null || echo 0); n=$((n+1)); echo $n >"$dir/runs"
if [ $n -le ` + strconv.Itoa(fails) + ` ]; then
	echo "(00.36) ` + errLine + `" >"$dir/dump.log"
	exit 1
fi
echo "(00.40) Dumping finished successfully" >"$dir/dump.log"
`
	path := filepath.Join(t.TempDir(), "criu")
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return CRIU{Path: path}, dir
}

func runs(t *testing.T, dir string) int {
	b, _ := os.ReadFile(filepath.Join(dir, "runs"))
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n
}

// A dump that meets a connection being closed is tried again; one that
// keeps meeting it, or fails for another reason, fails with criu's words.
func TestDumpRetriesOnClosingConnection(t *testing.T) {
	const tcp = "Error (criu/sk-inet.c:189): inet: Connected TCP socket, consider using --tcp-established option."
	ctx := context.Background()

	c, dir := fakeDumper(t, 2, tcp)
	if err := c.Dump(ctx, 42, dir, LeaveRunning); err != nil {
		t.Errorf("dump after two refusals: %v", err)
	}
	if n := runs(t, dir); n != 3 {
		t.Errorf("criu ran %d times; want 3", n)
	}

	c, dir = fakeDumper(t, 99, tcp)
	if err := c.Dump(ctx, 42, dir, LeaveRunning); err == nil || !strings.Contains(err.Error(), "Connected TCP socket") {
		t.Errorf("dump with a connection that stays: %v; want criu's refusal", err)
	}
	if n := runs(t, dir); n != dumpAttempts {
		t.Errorf("criu ran %d times; want %d", n, dumpAttempts)
	}

	c, dir = fakeDumper(t, 99, "Error (criu/cr-dump.c:1635): Dump files (pid: 42) failed with -1")
	if err := c.Dump(ctx, 42, dir, LeaveRunning); err == nil || !strings.Contains(err.Error(), "Dump files") {
		t.Errorf("dump failing otherwise: %v", err)
	}
	if n := runs(t, dir); n != 1 {
		t.Errorf("criu ran %d times for another failure; want 1", n)
	}
}
