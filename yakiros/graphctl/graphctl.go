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
	"strings"

	"yakimg/yakiros/control"
)

const usage = `Usage: graphctl [--socket PATH] [--json] <command> [args...]

Asks graph-resolver, YakirOS's init, over its control socket.

Commands:
  status      every component: state, pid, uptime, restarts
  caps        every capability: UP or DOWN, and its providers
  poweroff    stop all components in reverse dependency order, power off
  reboot      stop all components in reverse dependency order, reboot

Options:
  --socket PATH   control socket (default $GRAPHCTL_SOCKET or /run/graph-resolver.sock)
  --json          print the reply's data as JSON instead of text

Exit status: 0 on success, 1 when graph-resolver cannot be reached or
reports an error, 2 on a usage error.

Example:
  graphctl status
  graphctl --json caps
`

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

	resp, err := control.Do(ctx, *socket, control.Request{Command: fs.Arg(0), Args: fs.Args()[1:]})
	if err != nil {
		fmt.Fprintf(stderr, "graphctl: %v\n", err)
		return 1
	}
	if !resp.OK {
		fmt.Fprintf(stderr, "graphctl: %s\n", strings.TrimSuffix(resp.Error, "\n"))
		return 1
	}
	if *asJSON {
		var out bytes.Buffer
		if err := json.Indent(&out, resp.Data, "", "  "); err != nil {
			fmt.Fprintf(stderr, "graphctl: reply data: %v\n", err)
			return 1
		}
		out.WriteByte('\n')
		stdout.Write(out.Bytes())
		return 0
	}
	io.WriteString(stdout, resp.Text)
	if resp.Text != "" && !strings.HasSuffix(resp.Text, "\n") {
		io.WriteString(stdout, "\n")
	}
	return 0
}
