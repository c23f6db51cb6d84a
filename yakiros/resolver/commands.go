package resolver

import (
	"fmt"
	"strings"
	"time"

	"yakimg/yakiros/capability"
	"yakimg/yakiros/control"
	"yakimg/yakiros/machine"
)

// commands lists what the control socket understands, for the reply to an
// unknown command.
const commands = "status, caps (or capabilities), log <component> [lines], readiness, check-readiness [component], " +
	"tree <component>, rdeps <capability>, pending, simulate remove <component>, dot, check-cycles, analyze, validate, " +
	"path <from> <to>, scc, order, inspect <component>, resolve, upgrade <component> [--binary PATH] [--timeout D], kexec (--dry-run | --yes) <kernel> [--initrd F] [--append S], kexec-status, " +
	"checkpoint <component> [--stop], restore <component> [id], checkpoint-list [component], checkpoint-rm <component> <id>, " +
	"checkpoint-cleanup [--max-age D] [--keep N] [--quota BYTES] [component], checkpoint-usage, reload, poweroff, reboot"

// handle answers one control call. It runs on the event loop; a command
// whose answer needs slow work replies from a goroutine of its own.
func (l *loop) handle(c *control.Call) {
	req := c.Request
	noArgs := func(answer func() control.Response) {
		if len(req.Args) > 0 {
			c.Reply(control.Fail(fmt.Sprintf("%s takes no arguments, got %q", req.Command, req.Args)))
			return
		}
		c.Reply(answer())
	}
	switch req.Command {
	case "status":
		noArgs(l.status)
	case "caps", "capabilities":
		noArgs(l.capabilities)
	case "log":
		l.logCommand(c)
	case "readiness":
		noArgs(l.readinessCommand)
	case "check-readiness":
		c.Reply(l.checkReadiness(req.Args))
	case "resolve":
		noArgs(l.resolveCommand)
	case "upgrade":
		l.upgradeCommand(c)
	case "checkpoint", "restore", "checkpoint-list", "checkpoint-rm", "checkpoint-cleanup", "checkpoint-usage":
		l.checkpointCommands(c)
	case "kexec":
		l.kexecCommand(c)
	case "kexec-status":
		l.kexecStatusCommand(c)
	case "inspect":
		c.Reply(l.inspect(req.Args))
	case "reload":
		noArgs(func() control.Response {
			d, err := l.reload("graphctl reload")
			if err != nil {
				return control.Fail(err.Error())
			}
			return control.OK(reloadText(l.configDir, d), d)
		})
	case "poweroff":
		noArgs(func() control.Response { return l.requestHalt(machine.PowerOff, c.PeerPid, "Powering off") })
	case "reboot":
		noArgs(func() control.Response { return l.requestHalt(machine.Reboot, c.PeerPid, "Rebooting") })
	case "tree", "rdeps", "pending", "simulate", "dot", "check-cycles", "analyze", "validate", "path", "scc", "order":
		c.Reply(l.graphCommand(req))
	default:
		c.Reply(control.Fail(fmt.Sprintf("Unknown command: %s\nAvailable commands: %s", strings.Join(append([]string{req.Command}, req.Args...), " "), commands)))
	}
}

// requestHalt begins shutdown. A component asking for it (the suite runner
// does, when it is done) is stopped last, so that it can take the answer.
func (l *loop) requestHalt(a machine.Action, peer int, text string) control.Response {
	if l.halt != nil {
		return control.Fail(fmt.Sprintf("already shutting down for %v", l.halt.action))
	}
	l.beginShutdown(a, fmt.Sprintf("control socket, pid %d", peer))
	l.halt.requester = l.unitOf(peer)
	return control.OK(text, control.ActionData{Action: a.String()})
}

// resolveCommand resets the restart count of every FAILED component and
// runs a resolution pass at once.
func (l *loop) resolveCommand() control.Response {
	if l.halt != nil {
		return control.Fail(fmt.Sprintf("not resolving: shutting down for %v", l.halt.action))
	}
	d := control.ResolveData{Reset: []string{}, Started: []string{}, Failed: []string{}}
	for _, u := range l.units {
		if u.state == Failed {
			l.resetRestarts(u)
			d.Reset = append(d.Reset, u.Name)
		}
	}
	for _, u := range l.resolve() {
		if u.alive {
			d.Started = append(d.Started, u.Name)
		} else {
			d.Failed = append(d.Failed, u.Name+": "+u.reason)
		}
	}
	var b strings.Builder
	b.WriteString("Resolution pass complete\n")
	if len(d.Reset) > 0 {
		fmt.Fprintf(&b, "  restart count reset: %s\n", strings.Join(d.Reset, ", "))
	}
	if len(d.Started) == 0 && len(d.Failed) == 0 {
		b.WriteString("  nothing to start\n")
	}
	if len(d.Started) > 0 {
		fmt.Fprintf(&b, "  started: %s\n", strings.Join(d.Started, ", "))
	}
	for _, f := range d.Failed {
		fmt.Fprintf(&b, "  failed to start: %s\n", f)
	}
	return control.OK(b.String(), d)
}

var (
	statusRule = strings.Repeat("─", 76)
	capsRule   = strings.Repeat("─", 58)
)

func (l *loop) status() control.Response {
	now := time.Now()
	var b strings.Builder
	data := control.StatusData{Components: []control.ComponentStatus{}}
	var active, degraded, starting, failed int
	fmt.Fprintf(&b, "%-20s %-10s %-7s %-7s %-8s %-8s %s\n", "COMPONENT", "STATE", "PID", "UPTIME", "RESTARTS", "HEALTH", "LAST CHECK")
	b.WriteString(statusRule + "\n")
	for _, u := range l.units {
		switch u.state {
		case Active, Done:
			active++
		case Degraded:
			degraded++
		case Starting, ReadyWait:
			starting++
		case Failed:
			failed++
		}
		cs := control.ComponentStatus{
			Name:     u.Name,
			Type:     string(u.Type),
			State:    u.state.String(),
			Requires: nonNil(u.Requires),
			Provides: nonNil(u.Provides),
			Reason:   u.reason,
		}
		if u.starts > 1 {
			cs.Restarts = u.starts - 1
		}
		pid, uptime := "-", "0s"
		if u.alive {
			cs.Pid = u.pid
			pid = fmt.Sprint(u.pid)
			up := now.Sub(u.since)
			cs.UptimeMS = up.Milliseconds()
			uptime = formatUptime(up)
		} else if u.state == Done {
			uptime = "-"
		}
		fillHealth(&cs, u, now)
		cs.Isolation = l.isolationStatus(u)
		health, lastCheck := healthColumns(u, now)
		data.Components = append(data.Components, cs)
		fmt.Fprintf(&b, "%-20s %-10s %-7s %-7s %-8d %-8s %s\n", u.Name, cs.State, pid, uptime, cs.Restarts, health, lastCheck)
	}
	b.WriteString(statusRule + "\n")
	fmt.Fprintf(&b, "Summary: %d active, %d degraded, %d starting, %d failed, %d total\n",
		active, degraded, starting, failed, len(l.units))
	return control.OK(b.String(), data)
}

// formatUptime renders d as status shows it: 1h2m, 3m4s or 5s.
func formatUptime(d time.Duration) string {
	s := int64(d / time.Second)
	switch {
	case s >= 3600:
		return fmt.Sprintf("%dh%dm", s/3600, s%3600/60)
	case s >= 60:
		return fmt.Sprintf("%dm%ds", s/60, s%60)
	default:
		return fmt.Sprintf("%ds", s)
	}
}

func (l *loop) capabilities() control.Response {
	var b strings.Builder
	data := control.CapsData{Capabilities: []control.CapabilityStatus{}}
	up := 0
	fmt.Fprintf(&b, "%-30s %-7s %s\n", "CAPABILITY", "STATUS", "PROVIDER")
	b.WriteString(capsRule + "\n")
	for _, c := range l.caps.List() {
		providers := "-"
		if c.Status == capability.Up {
			up++
			providers = strings.Join(c.Providers, ", ")
		}
		status := l.capStatus(c)
		data.Capabilities = append(data.Capabilities, control.CapabilityStatus{
			Name: c.Name, Status: status, Providers: nonNil(c.Providers), Since: c.Since,
		})
		fmt.Fprintf(&b, "%-30s %-7s %s\n", c.Name, status, providers)
	}
	b.WriteString(capsRule + "\n")
	n := len(data.Capabilities)
	fmt.Fprintf(&b, "Total: %d capabilities (%d up, %d down)\n", n, up, n-up)
	return control.OK(b.String(), data)
}

// nonNil keeps empty lists as [] rather than null in JSON.
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
