// Package graphctl is the command-line client of graph-resolver's control
// socket.
package graphctl

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"yakimg/yakiros/control"
)

const usage = `Usage: graphctl [--socket PATH] [--json] <command> [args...]

Asks graph-resolver, YakirOS's init, over its control socket.

Commands (each with an example below it):
  status                    every component: state, pid, uptime, restarts, health
                            (OK or FAIL(n)) and when it was last checked
                              graphctl status
  caps                      every capability: UP, DEGRADED or DOWN, and its providers
                              graphctl caps
  log <component> [lines]   the last lines of a component's log (default 20)
                              graphctl log web 50
  readiness                 how each component with a readiness method is doing
                              graphctl readiness
  check-readiness [comp]    probe readiness now (all waiting components, or one)
                              graphctl check-readiness web
  tree <component>          what a component requires, to full depth
                              graphctl tree web
  rdeps <capability>        the components requiring a capability
                              graphctl rdeps network.configured
  pending                   components waiting for capabilities, and for which
                              graphctl pending
  simulate remove <comp>    what removing a component would take down (changes nothing)
                              graphctl simulate remove network-setup
  dot                       the graph in Graphviz DOT
                              graphctl dot | dot -Tsvg > graph.svg
  check-cycles              every dependency cycle
                              graphctl check-cycles
  analyze                   graph metrics: depth, cycles, unprovided capabilities
                              graphctl analyze
  validate                  fails (exit 1) on rejected declarations or cycles
                              graphctl validate
  path <from> <to>          a dependency path between components or capabilities
                              graphctl path web network.configured
  scc                       the strongly connected components that are cycles
                              graphctl scc
  order                     the start order, in topological layers
                              graphctl order
  inspect <component>       its state, cgroup, limits, current usage (memory, pids,
                            CPU throttling, OOM kills) and namespaces
                              graphctl inspect test-isolated-service
  resolve                   run a resolution pass now; FAILED components that
                            gave up (restarting too fast) try again
                              graphctl resolve
  upgrade <comp> [--binary PATH] [--timeout D]
                            run new code, the first level that applies: CRIU
                            dump and restore (checkpointable, no --binary), the
                            old instance handing its sockets to the new one
                            (handoff = "fd-passing"), else a restart; a new
                            instance that fails leaves the old one serving
                              graphctl upgrade test-echo-server --timeout 5s
  kexec --dry-run <kernel> [--initrd F] [--append S]
                            run every check of a live kernel upgrade's seven
                            phases, change nothing, give a verdict per phase
                            (exit 1 when one fails)
                              graphctl kexec --dry-run /boot/vmlinuz-6.1.0-50-cloud-amd64
  kexec --yes <kernel> [--initrd F] [--append S]
                            live kernel upgrade: the checks, CRIU checkpoints of
                            the running services into /checkpoint, the manifest,
                            then reboot into the kernel (the command line is the
                            running one's without --append); the next boot
                            restores the services. Anything failing first
                            abandons it and every service runs on (exit 1)
                              graphctl kexec --yes /boot/vmlinuz-6.1.0-50-cloud-amd64 --initrd /boot/initramfs.cpio.zst
  kexec-status              what the boot after a live kernel upgrade restored
                              graphctl kexec-status
  checkpoint <comp> [--stop] CRIU dump of a running service into /checkpoint/<comp>/<id>/
                            (it keeps running unless --stop or leave_running = false);
                            retention then removes what is over max_age, keep or quota
                              graphctl checkpoint test-checkpoint-service
  restore <comp> [id]       stop its process if one runs, restore a checkpoint (the
                            newest without id) and re-attach it; a refused or failed
                            restore starts the component fresh (exit 1)
                              graphctl restore test-checkpoint-service
  checkpoint-list [comp]    stored checkpoints, newest first
                              graphctl checkpoint-list test-checkpoint-service
  checkpoint-rm <comp> <id> remove one checkpoint
                              graphctl checkpoint-rm test-checkpoint-service 1795672800000000000
  checkpoint-cleanup [--max-age D] [--keep N] [--quota BYTES] [comp]
                            apply retention now (defaults 24h, 10, 100 MB per component)
                              graphctl checkpoint-cleanup --max-age 7d
  checkpoint-usage          bytes and checkpoints per component, free space
                              graphctl checkpoint-usage
  reload                    re-read the component directory and apply changes
                              graphctl reload
  poweroff                  stop all components in reverse dependency order, power off
                              graphctl poweroff
  reboot                    stop all components in reverse dependency order, reboot
                              graphctl reboot

Options:
  --socket PATH   control socket (default $GRAPHCTL_SOCKET or /run/graph-resolver.sock)
  --json          print the reply's data as JSON instead of text

Exit status: 0 on success, 1 when graph-resolver cannot be reached or
reports an error (a failed validate still prints its report), 2 on a
usage error.

Example:
  graphctl status
  graphctl --json caps
  graphctl log web 50
`

// upgradeWait is how long graphctl waits for an upgrade's answer.
const upgradeWait = 75 * time.Second

// kexecWait is how long graphctl waits for a kexec dry run: criu runs
// twice, each bounded to 20 s. A real kexec checkpoints every service as
// well: it may take up to control.MaxWait.
const kexecWait = 60 * time.Second

// Main runs graphctl with args (without the program name) and returns its
// exit status.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("graphctl", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	socket := fs.String("socket", control.SocketPath(), "")
	asJSON := fs.Bool("json", false, "")
	err := fs.Parse(args)
	if err == nil && fs.NArg() == 0 {
		err = errors.New("no command given")
	}
	switch {
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprint(stdout, usage)
		return 0
	case err != nil:
		fmt.Fprintf(stderr, "graphctl: %v\n\n%s", err, usage)
		return 2
	}

	req := control.Request{Command: fs.Arg(0), Args: fs.Args()[1:]}
	if req.Command == "upgrade" {
		// An upgrade answers when the handoff is over: up to its
		// --timeout (at most a minute) plus the time to stop a process.
		req.WaitMS = upgradeWait.Milliseconds()
	}
	if req.Command == "checkpoint" || req.Command == "restore" {
		// criu check, then a dump or a restore (30 s each at most), and
		// for a restore the stop of the running process first.
		req.WaitMS = upgradeWait.Milliseconds()
	}
	if req.Command == "kexec" {
		req.WaitMS = kexecWait.Milliseconds()
		if slices.Contains(req.Args, "--yes") && !slices.Contains(req.Args, "--dry-run") {
			req.WaitMS = control.MaxWait.Milliseconds()
		}
	}
	resp, err := control.Do(ctx, *socket, req)
	if err != nil {
		fmt.Fprintf(stderr, "graphctl: %s\n", unreachable(*socket, err, "/proc"))
		return 1
	}
	// A failing reply may still carry an answer (validate's report): it
	// goes to stdout like any other, the error to stderr.
	switch {
	case *asJSON && (resp.OK || !isNull(resp.Data)):
		var out bytes.Buffer
		if err := json.Indent(&out, resp.Data, "", "  "); err != nil {
			fmt.Fprintf(stderr, "graphctl: reply data: %v\n", err)
			return 1
		}
		out.WriteByte('\n')
		stdout.Write(out.Bytes())
	case !*asJSON:
		io.WriteString(stdout, resp.Text)
		if resp.Text != "" && !strings.HasSuffix(resp.Text, "\n") {
			io.WriteString(stdout, "\n")
		}
	}
	if !resp.OK {
		fmt.Fprintf(stderr, "graphctl: %s\n", strings.TrimSuffix(resp.Error, "\n"))
		return 1
	}
	return 0
}

// isNull reports whether raw JSON is null: the data of a plain error.
func isNull(raw json.RawMessage) bool {
	return string(bytes.TrimSpace(raw)) == "null"
}

// unreachable says in one line why the control socket could not be used
// and, when it is missing or dead, whether graph-resolver runs at all
// (found in procDir, normally /proc).
func unreachable(socket string, err error, procDir string) string {
	var what string
	switch {
	case errors.Is(err, fs.ErrNotExist):
		what = fmt.Sprintf("control socket %s does not exist", socket)
	case errors.Is(err, syscall.ECONNREFUSED):
		what = fmt.Sprintf("nothing listens on control socket %s", socket)
	default:
		return err.Error()
	}
	pids := processes(procDir, "graph-resolver")
	if len(pids) == 0 {
		return what + "; graph-resolver is not running"
	}
	return fmt.Sprintf("%s; graph-resolver is running (pid %s) but not on this socket: check --socket and $GRAPHCTL_SOCKET",
		what, strings.Join(pids, ", "))
}

// processes lists the pids in procDir whose command name is name.
func processes(procDir, name string) []string {
	entries, _ := os.ReadDir(procDir)
	var pids []string
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		comm, err := os.ReadFile(filepath.Join(procDir, e.Name(), "comm"))
		if err == nil && strings.TrimSpace(string(comm)) == name {
			pids = append(pids, e.Name())
		}
	}
	return pids
}
