package resolver

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"yakimg/yakiros/control"
	"yakimg/yakiros/isolate"
	"yakimg/yakiros/supervise"
)

// isolation is the loop's part of package isolate: the cgroup hierarchy
// and the watcher of OOM kills and emptied groups, both made at the first
// start of an isolated component, and the groups killed but not yet empty.
type isolation struct {
	top     string // the cgroup v2 mount
	self    string // PID 1's binary, run as the namespace helper
	cgroups *isolate.Hierarchy
	watcher *isolate.Watcher
	doomed  map[string]*isolate.Group // by path
}

// hierarchy opens the cgroup hierarchy and the watcher once; a failure is
// tried again at the next start, and makes this one fail saying why.
func (l *loop) hierarchy() (*isolate.Hierarchy, error) {
	iso := &l.iso
	if iso.cgroups != nil {
		return iso.cgroups, nil
	}
	h, err := isolate.Open(iso.top)
	if err != nil {
		return nil, err
	}
	w, err := isolate.NewWatcher()
	if err != nil {
		return nil, err
	}
	iso.cgroups, iso.watcher = h, w
	l.log.Infof("cgroup v2: components' groups below %s", h.Base())
	return h, nil
}

// isolateSpec makes u's cgroup (limits written before anything runs in it)
// and sets spec to clone the process into it and into u's namespaces,
// through the helper when something must be set up inside them.
func (l *loop) isolateSpec(u *unit, spec *supervise.Spec) error {
	flags, err := isolate.CloneFlags(u.Isolation.Namespaces)
	if err != nil {
		return err
	}
	h, err := l.hierarchy()
	if err != nil {
		return err
	}
	if g := l.iso.doomed[h.Base()+"/"+u.Resources.Cgroup]; g != nil {
		return fmt.Errorf("cgroup %s: the previous instance's processes are still being killed", g.Rel)
	}
	g, err := h.Create(u.Resources.Cgroup, u.Resources)
	if err != nil {
		return err
	}
	if err := l.iso.watcher.Add(g); err != nil {
		g.Remove()
		return err
	}
	u.oomBase, _ = g.OOMKills()
	u.group = g
	return l.wrapIsolated(u, spec, g, flags)
}

// wrapIsolated sets spec to clone the process into group g and into u's
// namespaces (flags), through the helper when something must be set up
// inside them. An upgrade's new instance joins the running instance's g.
func (l *loop) wrapIsolated(u *unit, spec *supervise.Spec, g *isolate.Group, flags uintptr) error {
	self := l.iso.self
	if self == "" {
		var err error
		self, err = os.Executable()
		if err != nil {
			return fmt.Errorf("namespace helper: %w", err)
		}
		l.iso.self = self
	}
	path, argv := isolate.Wrap(self, u.Isolation, spec.Binary, spec.Args)
	spec.Binary, spec.Argv0, spec.Args = path, argv[0], argv[1:]
	spec.Isolation = &supervise.Isolation{
		CgroupFD:   g.FD(),
		Cloneflags: flags,
		UIDMap:     isolate.IDMaps(u.Isolation.UIDMap),
		GIDMap:     isolate.IDMaps(u.Isolation.GIDMap),
		Credential: isolate.Credential(u.Isolation),
	}
	return nil
}

// releaseGroup ends u's group once its process is gone: whatever is left
// in it is killed and the directory removed (once empty, if processes are
// still leaving). It returns the OOM kills in the group since the start.
func (l *loop) releaseGroup(u *unit) int64 {
	g := u.group
	if g == nil {
		return 0
	}
	u.group = nil
	n, err := g.OOMKills()
	if err != nil {
		l.log.Warnf("component '%s': %v", u.Name, err)
	}
	if err := g.Kill(); err != nil {
		l.log.Warnf("component '%s': %v", u.Name, err)
	}
	l.removeGroup(g)
	// The watcher's news may not have arrived yet; it is ignored once the
	// group is released, so the file's count settles the total.
	n -= u.oomBase
	if n > u.oomRun {
		u.oomKills += n - u.oomRun
	}
	u.oomRun = 0
	return n
}

func (l *loop) removeGroup(g *isolate.Group) {
	err := g.Remove()
	switch {
	case errors.Is(err, isolate.ErrBusy):
		if l.iso.doomed == nil {
			l.iso.doomed = map[string]*isolate.Group{}
		}
		l.iso.doomed[g.Path] = g // the watcher says when it is empty
		return
	case err != nil:
		l.log.Warnf("%v", err)
	}
	delete(l.iso.doomed, g.Path)
	l.iso.watcher.Forget(g)
}

// onGroupEvents applies the watcher's news: an emptied group that was
// killed is removed; OOM kills are logged and counted for the component.
func (l *loop) onGroupEvents(evs []isolate.Event) {
	for _, ev := range evs {
		if ev.Empty {
			if l.iso.doomed[ev.Group.Path] == ev.Group {
				l.removeGroup(ev.Group)
			}
			continue
		}
		for _, u := range l.units {
			if u.group == ev.Group {
				u.oomKills += ev.OOMKills
				u.oomRun += ev.OOMKills
				l.log.Errorf("component '%s': %d OOM kill(s) in cgroup %s (memory.max %d)", u.Name, ev.OOMKills, ev.Group.Rel, u.Resources.MemoryMax)
			}
		}
	}
}

// isolationStatus is u's cgroup and namespaces for status and inspect;
// nil for a component without isolation.
func (l *loop) isolationStatus(u *unit) *control.IsolationStatus {
	if !isolate.Wanted(u.Component) {
		return nil
	}
	s := &control.IsolationStatus{
		Cgroup:     u.Resources.Cgroup,
		Limits:     map[string]string{},
		OOMKills:   u.oomKills,
		Namespaces: nonNil(u.Isolation.Namespaces),
		Hostname:   u.Isolation.Hostname,
		Root:       u.Isolation.Root,
		PrivateTmp: u.Isolation.PrivateTmp,
	}
	if l.iso.cgroups != nil {
		s.Cgroup = l.iso.cgroups.Base() + "/" + u.Resources.Cgroup
	}
	for _, lim := range isolate.Limits(u.Resources) {
		s.Limits[lim.File] = lim.Value
	}
	if g := u.group; g != nil {
		us := g.Usage()
		s.Usage = &control.CgroupUsage{MemoryCurrent: us.MemoryCurrent, PidsCurrent: us.PidsCurrent,
			CPUUsageUS: us.CPUUsageUS, NrThrottled: us.NrThrottled, ThrottledUS: us.ThrottledUS, OOMKills: us.OOMKills}
	}
	return s
}

// oomReason is why a component whose group saw n OOM kills failed.
func oomReason(u *unit, n int64, exit supervise.Exit) string {
	return fmt.Sprintf("OOM: %d process(es) killed at memory.max %d in cgroup %s (%v)", n, u.Resources.MemoryMax, u.Resources.Cgroup, exit)
}

// inspect answers `inspect <component>`: its state and isolation.
func (l *loop) inspect(args []string) control.Response {
	if len(args) != 1 {
		return control.Fail("usage: inspect <component>")
	}
	u := l.byName[args[0]]
	if u == nil {
		return control.Fail(fmt.Sprintf("Unknown component: %s", args[0]))
	}
	d := control.InspectData{Name: u.Name, State: u.state.String(), Reason: u.reason, Isolation: l.isolationStatus(u)}
	if u.alive {
		d.Pid = u.pid
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Component: %s\nState:     %s\n", u.Name, d.State)
	if d.Pid != 0 {
		fmt.Fprintf(&b, "PID:       %d\n", d.Pid)
	}
	if d.Reason != "" {
		fmt.Fprintf(&b, "Reason:    %s\n", d.Reason)
	}
	s := d.Isolation
	if s == nil {
		b.WriteString("Isolation: none (no [resources] or [isolation])\n")
		return control.OK(b.String(), d)
	}
	fmt.Fprintf(&b, "Cgroup:    %s\n", s.Cgroup)
	if len(s.Limits) == 0 {
		b.WriteString("Limits:    none\n")
	}
	for _, lim := range isolate.Limits(u.Resources) {
		fmt.Fprintf(&b, "Limit:     %s = %s\n", lim.File, lim.Value)
	}
	if us := s.Usage; us != nil {
		fmt.Fprintf(&b, "Usage:     memory.current %d, pids.current %d, cpu usage_usec %d, nr_throttled %d, throttled_usec %d, oom_kill %d\n",
			us.MemoryCurrent, us.PidsCurrent, us.CPUUsageUS, us.NrThrottled, us.ThrottledUS, us.OOMKills)
	}
	fmt.Fprintf(&b, "OOM kills: %d\n", s.OOMKills)
	ns := "none"
	if len(s.Namespaces) > 0 {
		ns = strings.Join(s.Namespaces, ", ")
	}
	fmt.Fprintf(&b, "Namespaces: %s\n", ns)
	if s.Hostname != "" {
		fmt.Fprintf(&b, "Hostname:  %s\n", s.Hostname)
	}
	fmt.Fprintf(&b, "Root:      %s\nPrivate /tmp: %v\n", s.Root, s.PrivateTmp)
	return control.OK(b.String(), d)
}

// closeIsolation stops the watcher, once the loop is done.
func (l *loop) closeIsolation() {
	if l.iso.watcher != nil {
		l.iso.watcher.Close()
	}
}
