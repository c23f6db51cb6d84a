// Package resolver is graph-resolver, YakirOS's PID 1: it mounts the kernel
// filesystems, loads the component graph, starts each component once its
// required capabilities are up, reaps every process, answers graphctl on the
// control socket and, on request, shuts everything down and powers off.
//
// Run as any other PID it is in test mode: no mounts, no killing of foreign
// processes, no power off; everything else is the same, and a shutdown
// request makes Main return.
package resolver

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"yakimg/yakiros/config"
	"yakimg/yakiros/control"
	"yakimg/yakiros/machine"
)

const usage = `Usage: graph-resolver [--config-dir DIR] [--control-socket PATH] [--log-dir DIR]

YakirOS init: brings up the components declared in DIR/*.toml as their
required capabilities come up, and serves graphctl on the control socket.
Not running as PID 1 it runs in test mode and returns after a shutdown request.

Options:
  --config-dir DIR        component declarations (default /etc/graph.d)
  --control-socket PATH   control socket (default $GRAPHCTL_SOCKET or /run/graph-resolver.sock)
  --log-dir DIR           per-component logs, DIR/<name>.log (default /run/graph)

Example:
  graph-resolver --config-dir ./graph.d --control-socket /tmp/gr.sock --log-dir /tmp/graph
`

// defaultPath is PATH for components when the kernel gave PID 1 none.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// bootMachine does PID 1's first duties and opens /dev/kmsg for its log
// (nil if that fails). Nothing here is fatal: the errors are for the log.
func bootMachine() (*os.File, []error) {
	errs := machine.MountEarly() // /dev/kmsg and /proc need them
	kmsg, err := os.OpenFile("/dev/kmsg", os.O_WRONLY, 0)
	if err != nil {
		errs = append(errs, fmt.Errorf("log to /dev/kmsg: %w", err))
	}
	for _, err := range []error{machine.UnlimitKmsg(), machine.DisableCtrlAltDel()} {
		if err != nil {
			errs = append(errs, err)
		}
	}
	if os.Getenv("PATH") == "" {
		os.Setenv("PATH", defaultPath)
	}
	return kmsg, errs
}

// Main runs graph-resolver with args (without the program name) and returns
// its exit status. As PID 1 it returns only if powering off failed.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	pid1 := os.Getpid() == 1
	fs := flag.NewFlagSet("graph-resolver", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	configDir := fs.String("config-dir", "/etc/graph.d", "")
	socket := fs.String("control-socket", control.SocketPath(), "")
	logDir := fs.String("log-dir", "/run/graph", "")
	flagErr := fs.Parse(args)
	if flagErr == nil && fs.NArg() > 0 {
		flagErr = fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	switch {
	case errors.Is(flagErr, flag.ErrHelp):
		fmt.Fprint(stdout, usage)
		return 0
	case flagErr != nil && !pid1:
		fmt.Fprintf(stderr, "graph-resolver: %v\n\n%s", flagErr, usage)
		return 2
	}

	log := &logger{w: stderr}
	if pid1 {
		kmsg, warnings := bootMachine()
		if kmsg != nil {
			defer kmsg.Close()
			log.w = kmsg
		}
		log.Infof("graph-resolver starting (pid %d)", os.Getpid())
		// The kernel hands init the command-line words it does not
		// know; PID 1 must never exit over them.
		if flagErr != nil {
			log.Warnf("ignoring arguments %q: %v", args, flagErr)
		}
		for _, err := range warnings {
			log.Warnf("%v", err)
		}
	} else {
		log.Infof("graph-resolver starting (pid %d)", os.Getpid())
		log.Warnf("not running as PID 1: test mode (no mounts, no power off)")
	}

	comps, errs := config.Load(*configDir)
	for _, err := range errs {
		log.Errorf("rejected: %v", err)
	}
	l := newLoop(log, pid1, *logDir, comps)

	calls := make(chan *control.Call)
	srv, err := control.Listen(*socket, calls, log.Warnf)
	if err != nil {
		log.Errorf("control socket: %v", err)
		if !pid1 {
			return 1
		}
	} else {
		log.Infof("control socket ready: %s", *socket)
	}

	action := l.run(ctx, calls)
	if srv != nil {
		if err := srv.Close(); err != nil {
			log.Warnf("close control socket: %v", err)
		}
	}
	if !pid1 {
		log.Infof("test mode: %v done, exiting", action)
		return 0
	}
	for _, err := range machine.Teardown() {
		log.Errorf("%v", err)
	}
	log.Infof("%v", action)
	log.Errorf("%v", machine.Halt(action))
	return 1
}
