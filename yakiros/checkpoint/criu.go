package checkpoint

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Timeouts of criu runs: PID 1 never waits on them, but a hung criu must
// not hold a component forever.
const (
	CheckTimeout   = 10 * time.Second
	DumpTimeout    = 30 * time.Second
	RestoreTimeout = 30 * time.Second
)

// ErrNoCRIU is returned when no criu binary is installed.
var ErrNoCRIU = errors.New("CRIU is not installed")

// searchPath is where criu is looked for, in order.
var searchPath = []string{"/usr/sbin/criu", "/usr/bin/criu", "/sbin/criu", "/bin/criu"}

// Find returns the first executable criu in the search path.
func Find() (string, error) {
	for _, p := range searchPath {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w (looked for %s)", ErrNoCRIU, strings.Join(searchPath, ", "))
}

// CRIU runs one criu binary.
type CRIU struct {
	Path string
	// Procs, if set, starts criu and learns its exit from the process
	// that reaps every child (PID 1's loop); nil: criu is waited for here.
	Procs *Procs
}

// run runs criu with args, its output into outFile (a temporary file if ""), extra
// files from fd 3 on, and kills it after timeout.
func (c CRIU) run(ctx context.Context, timeout time.Duration, outFile string, extra []*os.File, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var out bytes.Buffer
	var err error
	if c.Procs != nil {
		if outFile == "" {
			f, terr := os.CreateTemp("", "criu-*.out")
			if terr != nil {
				return nil, fmt.Errorf("criu %s: %w", args[0], terr)
			}
			f.Close()
			outFile = f.Name()
			defer os.Remove(outFile)
		}
		err = c.Procs.run(ctx, c.Path, args, outFile, extra)
		b, _ := os.ReadFile(outFile)
		out.Write(b)
	} else {
		cmd := exec.CommandContext(ctx, c.Path, args...)
		cmd.Stdout, cmd.Stderr = &out, &out
		cmd.ExtraFiles = extra
		err = cmd.Run()
	}
	if ctx.Err() != nil {
		return out.Bytes(), fmt.Errorf("criu %s: timed out after %v", args[0], timeout)
	}
	if err != nil {
		return out.Bytes(), fmt.Errorf("criu %s: %w", args[0], err)
	}
	return out.Bytes(), nil
}

// Check runs `criu check`: the kernel and the system support checkpoints.
func (c CRIU) Check(ctx context.Context) error {
	out, err := c.run(ctx, CheckTimeout, "", nil, "check")
	if err != nil {
		return fmt.Errorf("%w: %s", err, lastLines(out, 3))
	}
	return nil
}

var versionRE = regexp.MustCompile(`(?m)^Version:\s*(\d+)\.(\d+)(?:\.(\d+))?`)

// ParseVersion reads `criu --version` output ("Version: 3.17.1").
func ParseVersion(out []byte) (Version, error) {
	m := versionRE.FindSubmatch(out)
	if m == nil {
		return Version{}, fmt.Errorf("criu --version: no version in %q", lastLines(out, 2))
	}
	var v Version
	v.Major, _ = strconv.Atoi(string(m[1]))
	v.Minor, _ = strconv.Atoi(string(m[2]))
	if len(m[3]) > 0 {
		v.Patch, _ = strconv.Atoi(string(m[3]))
	}
	return v, nil
}

// Version runs `criu --version`.
func (c CRIU) Version(ctx context.Context) (Version, error) {
	out, err := c.run(ctx, CheckTimeout, "", nil, "--version")
	if err != nil {
		return Version{}, err
	}
	return ParseVersion(out)
}

// DumpLog and RestoreLog are criu's logs inside a checkpoint directory.
const (
	DumpLog    = "dump.log"
	RestoreLog = "restore.log"
)

// AfterDump is what becomes of a process tree once criu has dumped it.
type AfterDump int

const (
	// EndTree: criu kills it; nothing it could do after the dump is lost.
	EndTree AfterDump = iota
	// LeaveRunning: it runs on (--leave-running).
	LeaveRunning
	// LeaveStopped: it is left stopped (SIGSTOP, --leave-stopped): a live
	// kernel upgrade freezes each service at its checkpoint and lets it
	// run on (SIGCONT) only if the upgrade is abandoned.
	LeaveStopped
)

// DumpArgs is the criu command line dumping the process tree of pid into
// dir. Components run as session leaders (supervise starts them with
// setsid), so no --shell-job is needed. A connection still in a listening
// socket's queue, not yet accepted, is left out (--skip-in-flight): its
// client sees it fail as it would any refused connection, where without
// the flag any client connecting at that moment (a health check, say)
// fails the whole dump. Established connections still fail it.
func DumpArgs(pid int, dir string, after AfterDump) []string {
	args := []string{"dump", "-t", strconv.Itoa(pid), "-D", dir, "-o", DumpLog, "-v4", "--skip-in-flight"}
	switch after {
	case LeaveRunning:
		args = append(args, "--leave-running")
	case LeaveStopped:
		args = append(args, "--leave-stopped")
	}
	return args
}

// A connection the service has just answered and is closing is still
// established for a moment, and criu refuses to dump it (its log says
// connectedTCP). A dump meeting one is tried again after dumpRetryPause, up
// to dumpAttempts times in all; a connection that stays open still fails it.
const (
	connectedTCP   = "Connected TCP socket"
	dumpAttempts   = 3
	dumpRetryPause = 300 * time.Millisecond
)

// Dump checkpoints the process tree of pid into dir. When the dump fails
// criu lets the tree run on, whatever after says.
func (c CRIU) Dump(ctx context.Context, pid int, dir string, after AfterDump) error {
	for attempt := 1; ; attempt++ {
		_, err := c.run(ctx, DumpTimeout, filepath.Join(dir, "criu-dump.out"), nil, DumpArgs(pid, dir, after)...)
		if err == nil {
			return nil
		}
		tail := logTail(filepath.Join(dir, DumpLog))
		if attempt == dumpAttempts || !strings.Contains(tail, connectedTCP) {
			return fmt.Errorf("%w: %s", err, tail)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %s", err, tail)
		case <-time.After(dumpRetryPause):
		}
	}
}

// RestoreArgs is the criu command line restoring dir detached (criu exits
// once the tree runs, so the restored root is reparented to PID 1), its
// root's pid written to pidfile and its log to dir/restore.log. output, if
// not "", is the "pipe:[inode]" the process wrote to, replaced by the file
// passed as fd 3.
func RestoreArgs(dir, pidfile, output string) []string {
	args := []string{"restore", "-D", dir, "-o", RestoreLog, "-v4", "--restore-detached", "--pidfile", pidfile}
	if output != "" {
		args = append(args, "--inherit-fd", "fd[3]:"+output)
	}
	return args
}

// Restore restores checkpoint cp detached and returns the restored root's
// pid. output, if non-nil, becomes the process's stdout and stderr. criu's
// log stays next to the images.
func (c CRIU) Restore(ctx context.Context, cp Checkpoint, output *os.File) (int, error) {
	pidfile := filepath.Join(cp.Path, "restore.pid")
	os.Remove(pidfile) // a previous restore's
	var extra []*os.File
	outName := ""
	if output != nil && cp.Output != "" {
		extra, outName = []*os.File{output}, cp.Output
	}
	if _, err := c.run(ctx, RestoreTimeout, filepath.Join(cp.Path, "criu-restore.out"), extra, RestoreArgs(cp.Path, pidfile, outName)...); err != nil {
		return 0, fmt.Errorf("%w: %s", err, logTail(filepath.Join(cp.Path, RestoreLog)))
	}
	b, err := os.ReadFile(pidfile)
	if err != nil {
		return 0, fmt.Errorf("criu restore: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("criu restore: pidfile holds %q", b)
	}
	return pid, nil
}

// logTail returns the errors at the end of a criu log, for messages.
func logTail(p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	var errs []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, "Error") || strings.Contains(l, "error") {
			errs = append(errs, strings.TrimSpace(l))
		}
	}
	if len(errs) == 0 {
		return lastLines(b, 3)
	}
	if len(errs) > 3 {
		errs = errs[len(errs)-3:]
	}
	return strings.Join(errs, "; ")
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "; ")
}

// OutputOf returns what pid's stdout is, if it is a pipe ("pipe:[inode]"),
// else "".
func OutputOf(pid int) string {
	link, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/1", pid))
	if err != nil || !strings.HasPrefix(link, "pipe:[") {
		return ""
	}
	return link
}
