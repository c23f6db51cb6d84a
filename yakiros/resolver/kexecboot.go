package resolver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"yakimg/yakiros/checkpoint"
	"yakimg/yakiros/config"
	"yakimg/yakiros/control"
	"yakimg/yakiros/kexec"
)

// The boot after a live kernel upgrade. Before the loop starts, PID 1
// reads the manifest from the state directory (the same initramfs booted
// again; yakiros.checkpoint= on the command line is honoured), removes it
// so that it is used once, and moves the kernel's pid counter past every
// pid the checkpointed processes had: nothing forked from then on can take
// one, so each restore finds its pids free whenever it runs. Each
// checkpointed service is then restored where the graph would start it:
// once its requirements are up, in dependency order, instead of a fresh
// start; the restored process is re-attached and its capabilities
// registered, and the rest of the graph resolves around it. A restore that
// fails starts the service fresh and says so. A manifest that is truncated,
// malformed or of a newer format is ignored with a log line: a normal boot.

// kexecStateDir, when set, is where a graph-resolver in test mode looks
// for a manifest. PID 1 always reads the state directory the kernel
// command line names.
var kexecStateDir = ""

// afterKexec is what the boot after a kexec restores.
type afterKexec struct {
	store    checkpoint.Store // the state directory's checkpoints
	status   control.KexecStatusData
	pending  map[string]kexec.Entry // restored when resolve would start them
	inFlight map[string]bool
}

func (a *afterKexec) busy(name string) bool { return a.inFlight[name] }
func (a *afterKexec) restoring() bool       { return len(a.inFlight) > 0 }

// set records the outcome of name's restore for kexec-status.
func (a *afterKexec) set(name, outcome, reason string, pid int, ms float64) {
	for i := range a.status.Services {
		if s := &a.status.Services[i]; s.Component == name {
			s.Outcome, s.Reason, s.Pid, s.RestoreMS = outcome, reason, pid, ms
		}
	}
}

// loadAfterKexec reads the manifest a kexec left, if any. It returns nil
// on a normal boot.
func loadAfterKexec(log *logger, pid1 bool, comps []config.Component) *afterKexec {
	dir := kexecStateDir
	if dir == "" {
		if !pid1 {
			return nil
		}
		cmdline, _ := os.ReadFile("/proc/cmdline")
		dir = kexec.StateDirFrom(string(cmdline))
	}
	path := filepath.Join(dir, kexec.ManifestFile)
	a := &afterKexec{store: checkpoint.Store{Dir: dir}, pending: map[string]kexec.Entry{}, inFlight: map[string]bool{},
		status: control.KexecStatusData{Manifest: path, Services: []control.KexecServiceState{}}}
	m, err := kexec.ReadManifest(dir, readBootID())
	switch {
	case errors.Is(err, kexec.ErrNoManifest):
		return nil
	case err != nil:
		log.Warnf("post-kexec: ignoring %s: %v; booting normally", path, err)
		a.status.Ignored = err.Error()
		return a
	}
	if err := kexec.RemoveManifest(dir); err != nil {
		log.Warnf("post-kexec: %v; it may be read again at the next boot", err)
	}
	if pid1 {
		if prev, err := kexec.ReservePids("/proc", m.LastPid); err != nil {
			log.Warnf("post-kexec: %v; a restore may find its pid taken", err)
		} else if prev < m.LastPid {
			log.Infof("post-kexec: pid counter moved from %d to %d: the checkpointed processes' pids stay free for their restore", prev, m.LastPid)
		}
	}
	a.status.AfterKexec, a.status.OldKernel, a.status.NewKernel = true, m.OldKernelVersion, m.NewKernelPath
	a.status.OldBootID, a.status.CheckpointMS = m.BootID, m.CheckpointMS
	slices.SortStableFunc(m.Entries, func(x, y kexec.Entry) int { return x.RestorePriority - y.RestorePriority })
	for _, e := range m.Entries {
		s := control.KexecServiceState{Component: e.ComponentName, CheckpointID: e.CheckpointID, OriginalPid: e.OriginalPid,
			Outcome: "pending", FrozenNS: e.FrozenNS}
		if !slices.ContainsFunc(comps, func(c config.Component) bool { return c.Name == e.ComponentName && c.Type == config.Service }) {
			s.Outcome, s.Reason = "gone", "no such service is declared in this boot"
			log.Warnf("post-kexec: checkpoint %s of '%s' is not restored: %s", e.CheckpointID, e.ComponentName, s.Reason)
		} else {
			a.pending[e.ComponentName] = e
		}
		a.status.Services = append(a.status.Services, s)
	}
	for _, f := range m.Fresh {
		a.status.Services = append(a.status.Services, control.KexecServiceState{Component: f.ComponentName, Outcome: "fresh", Reason: f.Reason})
	}
	log.Infof("post-kexec: upgraded from kernel %s (boot %s) to %s: %d services to restore as their requirements come up, %d start fresh",
		m.OldKernelVersion, m.BootID, m.NewKernelPath, len(a.pending), len(m.Fresh))
	return a
}

// setAfterKexec hands the loop what a kexec left to restore. criu is
// found and checked at once, off the loop: in a fresh boot `criu check`
// takes seconds under TCG, which the first restore need not wait for.
func (l *loop) setAfterKexec(a *afterKexec) {
	l.afterKexec = a
	if a != nil && len(a.pending) > 0 {
		go func() {
			if _, _, err := l.ckpt.criuFor(context.Background()); err != nil {
				l.log.Warnf("post-kexec: %v; the restores will fail and those services start fresh", err)
			}
		}()
	}
}

// startOrRestore starts u, or restores it when the manifest lists it.
func (l *loop) startOrRestore(u *unit) {
	a := l.afterKexec
	e, ok := kexec.Entry{}, false
	if a != nil {
		e, ok = a.pending[u.Name]
	}
	if !ok || u.Type != config.Service {
		l.start(u)
		return
	}
	delete(a.pending, u.Name)
	a.inFlight[u.Name] = true
	u.restartAt = time.Time{}
	u.state, u.reason = Starting, "restoring after the kernel upgrade"
	a.set(u.Name, "restoring", "", 0, 0)
	out, err := l.logs.Pipe(u.Name)
	if err != nil {
		l.log.Warnf("component '%s': %v; the restored process writes to a closed pipe", u.Name, err)
	}
	l.log.Infof("post-kexec: restoring component '%s' from checkpoint %s (pid %d before the kexec)", u.Name, e.CheckpointID, e.OriginalPid)
	store := a.store
	go func() {
		pid, ms, err := l.ckpt.restoreEntry(store, e, out)
		l.kexecDeliver(func() { l.kexecRestored(u, e, pid, ms, err) })
	}()
}

// restoreEntry runs off the loop: the checkpoint is verified, then criu
// restores it detached.
func (k *checkpointer) restoreEntry(store checkpoint.Store, e kexec.Entry, out *os.File) (int, float64, error) {
	if out != nil {
		defer out.Close()
	}
	cp, err := store.Get(e.ComponentName, e.CheckpointID)
	if err == nil {
		err = checkpoint.Verify(cp)
	}
	if err != nil {
		return 0, 0, err
	}
	ctx := context.Background()
	criu, _, err := k.criuFor(ctx)
	if err != nil {
		return 0, 0, err
	}
	t := time.Now()
	pid, err := criu.Restore(ctx, cp, out)
	return pid, msSince(t), err
}

// kexecRestored re-attaches a restored process, or lets u start fresh.
func (l *loop) kexecRestored(u *unit, e kexec.Entry, pid int, ms float64, err error) {
	a := l.afterKexec
	delete(a.inFlight, u.Name)
	if err == nil && (l.byName[u.Name] != u || l.halt != nil) {
		syscall.Kill(pid, syscall.SIGKILL)
		err = errors.New("the component was removed or the system is shutting down")
	}
	if err == nil && unix.Kill(pid, 0) != nil {
		err = fmt.Errorf("restored process %d ended at once", pid)
	}
	if err != nil {
		l.log.Errorf("post-kexec: restore of component '%s' from checkpoint %s failed: %v; starting it fresh", u.Name, e.CheckpointID, err)
		a.set(u.Name, "fresh", "restore failed: "+err.Error(), 0, 0)
		if u.state == Starting && !u.alive {
			u.state, u.reason = Inactive, "restore after the kernel upgrade failed: "+err.Error()
		}
		return
	}
	u.starts++
	u.pid, u.alive, u.since, u.reason, u.status = pid, true, time.Now(), "", ""
	u.health = healthState{}
	l.byPid[pid] = u
	// The checkpoint froze the service; criu restores it running, and a
	// SIGCONT makes sure of it.
	kexec.Resume([]kexec.Dumped{{Name: u.Name, Pid: pid}})
	a.set(u.Name, "restored", "", pid, ms)
	l.log.Infof("post-kexec: component '%s' restored from checkpoint %s (pid %d) in %.0f ms", u.Name, e.CheckpointID, pid, ms)
	// It was ready when it was checkpointed: it does not report
	// readiness again.
	l.activate(u)
}

// kexecStatusCommand answers kexec-status.
func (l *loop) kexecStatusCommand(c *control.Call) {
	if len(c.Request.Args) > 0 {
		c.Reply(control.Fail("kexec-status takes no arguments"))
		return
	}
	d := control.KexecStatusData{Services: []control.KexecServiceState{}}
	if a := l.afterKexec; a != nil {
		d = a.status
		d.Services = slices.Clone(a.status.Services)
	}
	var text string
	switch {
	case d.Ignored != "":
		text = fmt.Sprintf("This boot ignored the kexec manifest %s: %s\n", d.Manifest, d.Ignored)
	case !d.AfterKexec:
		text = "This boot did not follow a live kernel upgrade.\n"
	default:
		text = fmt.Sprintf("This boot followed a live kernel upgrade from kernel %s (boot %s) to %s.\nCheckpoints took %.0f ms before the kexec.\n",
			d.OldKernel, d.OldBootID, d.NewKernel, d.CheckpointMS)
		text += fmt.Sprintf("%-30s %-10s %-8s %-8s %s\n", "COMPONENT", "OUTCOME", "OLD PID", "PID", "DETAIL")
		for _, s := range d.Services {
			detail := s.Reason
			if s.Outcome == "restored" {
				detail = fmt.Sprintf("checkpoint %s, restore took %.0f ms", s.CheckpointID, s.RestoreMS)
			}
			text += fmt.Sprintf("%-30s %-10s %-8s %-8s %s\n", s.Component, s.Outcome, pidText(s.OriginalPid), pidText(s.Pid), detail)
		}
	}
	c.Reply(control.OK(text, d))
}

func pidText(pid int) string {
	if pid == 0 {
		return "-"
	}
	return fmt.Sprint(pid)
}
