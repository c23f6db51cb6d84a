package resolver

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"yakimg/yakiros/capability"
	"yakimg/yakiros/config"
	"yakimg/yakiros/control"
)

// reload loads the config directory again and applies the difference:
// components whose declaration is the same (config.Same) are left alone,
// running or not; changed ones are stopped and start again with the new
// declaration; removed ones are stopped and forgotten once reaped; new ones
// start. A component whose file is now rejected keeps running as it was, so
// a typo never takes a service down. Every FAILED component gets its
// restart count reset, as with `graphctl resolve`.
func (l *loop) reload(why string) (control.ReloadData, error) {
	if l.halt != nil {
		return control.ReloadData{}, fmt.Errorf("not reloading: shutting down for %v", l.halt.action)
	}
	// A directory that cannot be read at all is a mistake in progress
	// (say, moved away to be replaced), not a wish to stop everything.
	if _, err := os.ReadDir(l.configDir); err != nil {
		l.log.Errorf("reload (%s) refused: %v", why, err)
		return control.ReloadData{}, fmt.Errorf("reload refused, nothing changed: %w", err)
	}
	comps, errs := config.Load(l.configDir)
	l.rejected = errs
	rejectedFiles := map[string]bool{}
	d := control.ReloadData{Unchanged: []string{}, Changed: []string{}, Removed: []string{}, Added: []string{},
		Kept: []string{}, Rejected: []string{}}
	for _, err := range errs {
		l.log.Errorf("rejected: %v", err)
		d.Rejected = append(d.Rejected, err.Error())
		if fe := (*config.FileError)(nil); errors.As(err, &fe) {
			rejectedFiles[fe.File] = true
		}
	}

	decls := map[string]config.Component{}
	for _, c := range comps {
		decls[c.Name] = c
	}
	var leftover []*unit                      // units no longer declared but not forgotten yet
	for _, u := range slices.Clone(l.units) { // forget edits l.units
		if u.Name == capability.Kernel {
			continue
		}
		c, declared := decls[u.Name]
		switch {
		case !declared && rejectedFiles[u.File]:
			d.Kept = append(d.Kept, u.Name)
			leftover = append(leftover, u)
			l.log.Warnf("component '%s' left as it is: %s is rejected", u.Name, u.File)
		case !declared:
			d.Removed = append(d.Removed, u.Name)
			l.remove(u)
			if l.byName[u.Name] == u {
				leftover = append(leftover, u)
			}
		case u.next == nil && !u.removed && config.Same(u.Component, c):
			d.Unchanged = append(d.Unchanged, u.Name)
			u.File = c.File
		default:
			d.Changed = append(d.Changed, u.Name)
			l.change(u, c)
		}
	}
	units := []*unit{l.units[0]}
	for _, c := range comps {
		u := l.byName[c.Name]
		if u == nil {
			u = &unit{Component: c}
			l.byName[c.Name] = u
			d.Added = append(d.Added, c.Name)
			l.log.Infof("loaded component '%s' from %s", c.Name, c.File)
		}
		units = append(units, u)
	}
	l.units = append(units, leftover...)
	for _, u := range l.units {
		if u.state == Failed {
			l.resetRestarts(u)
		}
	}
	l.declarationsChanged()
	l.log.Infof("reloaded %s (%s): %s", l.configDir, why, summary(d))
	return d, nil
}

// remove stops u, or forgets it at once if nothing of it runs.
func (l *loop) remove(u *unit) {
	u.next, u.removed = nil, true
	switch {
	case u.state == Stopping:
	case u.alive:
		l.stop(u, "removed from the configuration", Inactive)
	default:
		l.forget(u)
	}
}

// change makes u run declaration c: at once if nothing of it runs, else
// once its process has been stopped and reaped.
func (l *loop) change(u *unit, c config.Component) {
	u.next, u.removed = &c, false
	switch {
	case u.state == Stopping:
	case u.alive:
		l.stop(u, "declaration changed", Inactive)
	default:
		l.replace(u, c)
	}
}

// replace gives a unit without a process its new declaration, as a fresh
// component.
func (l *loop) replace(u *unit, c config.Component) {
	l.withdraw(u) // a DONE oneshot still provides
	*u = unit{Component: c, state: Inactive, reason: "declaration changed"}
}

// forget drops a unit without a process.
func (l *loop) forget(u *unit) {
	l.withdraw(u)
	l.units = slices.DeleteFunc(l.units, func(v *unit) bool { return v == u })
	delete(l.byName, u.Name)
	l.log.Infof("component '%s' removed", u.Name)
}

// summary is the one-line account of a reload.
func summary(d control.ReloadData) string {
	s := fmt.Sprintf("%d unchanged, %d changed, %d removed, %d added, %d rejected",
		len(d.Unchanged), len(d.Changed), len(d.Removed), len(d.Added), len(d.Rejected))
	if len(d.Kept) > 0 {
		s += fmt.Sprintf(", %d kept as they were", len(d.Kept))
	}
	return s
}

// reloadText is the human reply to `graphctl reload`.
func reloadText(dir string, d control.ReloadData) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Reloaded %s: %s\n", dir, summary(d))
	for _, l := range []struct {
		label string
		names []string
	}{{"changed", d.Changed}, {"removed", d.Removed}, {"added", d.Added}, {"kept (file rejected)", d.Kept}} {
		if len(l.names) > 0 {
			fmt.Fprintf(&b, "  %s: %s\n", l.label, strings.Join(l.names, ", "))
		}
	}
	for _, r := range d.Rejected {
		fmt.Fprintf(&b, "  rejected: %s\n", r)
	}
	return b.String()
}
