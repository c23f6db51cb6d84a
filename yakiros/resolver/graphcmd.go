package resolver

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"yakimg/yakiros/capability"
	"yakimg/yakiros/control"
	"yakimg/yakiros/graph"
)

// declarationsChanged follows a load or reload: it rebuilds the index of
// dependents and finds the dependency cycles of the declarations. Members
// of a cycle go to CYCLE and are never started (a running one is stopped
// first, and goes to CYCLE once reaped); units whose cycle is gone leave
// CYCLE for INACTIVE and start as usual.
func (l *loop) declarationsChanged() {
	l.dependents = map[string][]*unit{}
	index := func(u *unit, caps []string) {
		for _, c := range caps {
			if d := l.dependents[c]; len(d) == 0 || d[len(d)-1] != u {
				l.dependents[c] = append(d, u)
			}
		}
	}
	for _, u := range l.units {
		index(u, u.Requires)
		if u.next != nil {
			index(u, u.next.Requires)
		}
	}

	l.cycles = map[string]string{}
	for _, c := range graph.New(l.nodes(), nil).SCCs() {
		l.log.Errorf("%s: %s stay in CYCLE and are never started", c, strings.Join(c.Members, ", "))
		for _, m := range c.Members {
			l.cycles[m] = c.String()
		}
	}
	for _, u := range l.units {
		why := l.cycles[u.Name]
		switch {
		case why == "" && u.state == Cycle:
			u.state, u.reason = Inactive, "dependency cycle broken"
		case why == "" || u.state == Stopping:
		case u.alive:
			l.stop(u, why, Inactive)
		default:
			l.withdraw(u) // a DONE oneshot still provides
			u.state, u.reason, u.restartAt = Cycle, why, time.Time{}
		}
	}
}

// nodes describes the units as declared: with the declaration a reload
// gave them (which runs once the old process is gone), without those a
// reload removed.
func (l *loop) nodes() []graph.Node {
	nodes := make([]graph.Node, 0, len(l.units))
	for _, u := range l.units {
		if u.removed {
			continue
		}
		c := &u.Component
		if u.next != nil {
			c = u.next
		}
		nodes = append(nodes, graph.Node{Name: c.Name, State: u.state.String(),
			Requires: c.Requires, Provides: c.Provides, Optional: c.Optional})
	}
	return nodes
}

// graphCommands are the analysis commands, answered from a fresh
// graph.Graph of the units and the capability registry, with their usage
// and how many arguments they take.
var graphCommands = map[string]struct {
	usage string
	args  int
}{
	"tree":         {"tree <component>", 1},
	"rdeps":        {"rdeps <capability>", 1},
	"pending":      {"pending", 0},
	"simulate":     {"simulate remove <component>", 2},
	"dot":          {"dot", 0},
	"check-cycles": {"check-cycles", 0},
	"analyze":      {"analyze", 0},
	"validate":     {"validate", 0},
	"path":         {"path <from> <to>", 2},
	"scc":          {"scc", 0},
	"order":        {"order", 0},
}

// graphCommand answers one of graphCommands. All of them only read.
func (l *loop) graphCommand(req control.Request) control.Response {
	cmd := graphCommands[req.Command]
	args := req.Args
	if len(args) != cmd.args || (req.Command == "simulate" && args[0] != "remove") {
		return control.Fail(fmt.Sprintf("usage: %s (got %q)", cmd.usage, strings.Join(append([]string{req.Command}, args...), " ")))
	}
	g := graph.New(l.nodes(), l.caps.List())
	switch req.Command {
	case "tree":
		return answer(g.Tree(args[0]))
	case "rdeps":
		if !l.knownCapability(args[0]) {
			return control.Fail(fmt.Sprintf("capability '%s' not found: no component provides or requires it", args[0]))
		}
		return reply(g.Rdeps(args[0]))
	case "pending":
		return reply(g.Pending())
	case "simulate":
		return answer(g.SimulateRemove(args[1]))
	case "dot":
		dot := g.Dot()
		return control.OK(dot, dot)
	case "check-cycles":
		return reply(g.CheckCycles())
	case "analyze":
		return reply(g.Analyze())
	case "validate":
		v := g.Validate(l.rejected)
		if !v.Valid {
			return control.FailWith(fmt.Sprintf("graph validation failed: %d rejected declaration(s), %d dependency cycle(s)",
				len(v.Rejected), len(v.Cycles)), v.Text(), v)
		}
		return reply(v)
	case "path":
		return answer(g.Path(args[0], args[1]))
	case "scc":
		return reply(g.SCCReport())
	default: // order
		return reply(g.Layers())
	}
}

// texter is an answer of package graph: data with a human rendering.
type texter interface{ Text() string }

func reply(t texter) control.Response {
	return control.OK(t.Text(), t)
}

// answer replies with t, or fails with err (an unknown name).
func answer[T texter](t T, err error) control.Response {
	if err != nil {
		return control.Fail(err.Error())
	}
	return reply(t)
}

// knownCapability reports whether any unit provides or requires c, or the
// registry knows it.
func (l *loop) knownCapability(c string) bool {
	if len(l.dependents[c]) > 0 || slices.ContainsFunc(l.caps.List(), func(r capability.Capability) bool { return r.Name == c }) {
		return true
	}
	return slices.ContainsFunc(l.units, func(u *unit) bool {
		return slices.Contains(u.Provides, c) || slices.Contains(u.Optional, c)
	})
}
