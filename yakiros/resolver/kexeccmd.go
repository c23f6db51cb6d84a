package resolver

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"yakimg/yakiros/control"
	"yakimg/yakiros/kexec"
)

// kexecUsage is the syntax of the kexec command.
const kexecUsage = "usage: kexec (--dry-run | --yes) <kernel> [--initrd FILE] [--append CMDLINE]"

// kexecRequest is a parsed `kexec …` command.
type kexecRequest struct {
	dryRun, yes            bool
	kernel, initrd, append string
}

// parseKexec reads `kexec [--dry-run] [--yes] <kernel> [--initrd F]
// [--append S]`; options and the kernel path may come in any order.
func parseKexec(args []string) (kexecRequest, error) {
	var r kexecRequest
	fs := flag.NewFlagSet("kexec", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.BoolVar(&r.dryRun, "dry-run", false, "")
	fs.BoolVar(&r.yes, "yes", false, "")
	fs.StringVar(&r.initrd, "initrd", "", "")
	fs.StringVar(&r.append, "append", "", "")
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return r, fmt.Errorf("kexec: %v; %s", err, kexecUsage)
		}
		if fs.NArg() == 0 {
			break
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
	switch len(positional) {
	case 0:
		return r, errors.New("kexec: kernel path required; " + kexecUsage)
	case 1:
		r.kernel = positional[0]
	default:
		return r, fmt.Errorf("kexec: one kernel path expected, got %q; %s", positional, kexecUsage)
	}
	return r, nil
}

// kexecCommand answers `kexec`. The dry run runs every check of the seven
// phases off the event loop (criu runs, files are read and a probe file is
// synced) and replies from its goroutine; a real kexec (--yes) is
// kexecUpgrade.
func (l *loop) kexecCommand(c *control.Call) {
	r, err := parseKexec(c.Request.Args)
	switch {
	case err != nil:
		c.Reply(control.Fail(err.Error()))
		return
	case !r.dryRun && !r.yes:
		c.Reply(control.Fail("kexec: refused without --yes: a real kexec replaces the running kernel; try --dry-run"))
		return
	case !r.dryRun:
		l.kexecUpgrade(c, r)
		return
	}
	var pids []int
	for _, u := range l.units {
		if u.alive {
			pids = append(pids, u.pid)
		}
	}
	l.log.Infof("kexec dry run: kernel %s, initrd %q", r.kernel, r.initrd)
	ctx, cancel := l.untilQuit()
	go func() {
		defer cancel()
		d := kexec.DryRun(ctx, dryRunOptions(r, residentBytes(pids)))
		text := kexec.Text(d)
		if d.OK {
			l.log.Infof("kexec dry run: every phase passed")
			c.Reply(control.OK(text, d))
			return
		}
		failures := kexec.Failures(d)
		l.log.Warnf("kexec dry run failed: %s", strings.Join(failures, "; "))
		c.Reply(control.FailWith("kexec dry run failed: "+strings.Join(failures, "; "), text, d))
	}()
}

// untilQuit is a context that ends when the loop does.
func (l *loop) untilQuit() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-l.quit:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// dryRunOptions are the checks of r, with checkpoints of need bytes.
func dryRunOptions(r kexecRequest, need int64) kexec.Options {
	cmdline, _ := os.ReadFile("/proc/cmdline")
	return kexec.Options{
		Kernel:          r.kernel,
		Initrd:          r.initrd,
		Append:          r.append,
		StateDir:        kexec.StateDirFrom(string(cmdline)),
		CheckpointBytes: need,
	}
}

// residentBytes sums the anonymous and shared-memory resident pages
// (RssAnon, RssShmem) of pids: what CRIU writes into its page images. Pages
// of files (the programs themselves) are not dumped. A process gone
// meanwhile counts nothing.
func residentBytes(pids []int) int64 {
	var total int64
	for _, pid := range pids {
		data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
		if err != nil {
			continue
		}
		for line := range strings.Lines(string(data)) {
			name, v, _ := strings.Cut(line, ":")
			if name != "RssAnon" && name != "RssShmem" {
				continue
			}
			if kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64); err == nil {
				total += kb << 10
			}
		}
	}
	return total
}
