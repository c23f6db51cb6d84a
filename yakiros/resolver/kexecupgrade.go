package resolver

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"yakimg/yakiros/capability"
	"yakimg/yakiros/checkpoint"
	"yakimg/yakiros/config"
	"yakimg/yakiros/control"
	"yakimg/yakiros/isolate"
	"yakimg/yakiros/kexec"
)

// A live kernel upgrade (docs/KEXEC.md), `kexec <kernel> --yes`: the dry
// run's checks, then every running service is checkpointed with CRIU onto
// the persistent state directory and left stopped, the manifest is written
// and synced, the kernel loaded, graphctl answered, and the machine
// rebooted into the new kernel. All of it but the bookkeeping runs in a
// goroutine; its outcome reaches the loop as a closure on kexecNews. If
// anything fails before the reboot the upgrade is abandoned: what it wrote
// is removed and the stopped services run on where they stood.

// kexecReplyGrace is how long the reply has to reach graphctl before the
// reboot cuts every connection.
const kexecReplyGrace = 300 * time.Millisecond

// kexecBudget bounds the checks, the checkpoints and the load, so that
// the answer comes within graphctl's wait (control.MaxWait).
const kexecBudget = 100 * time.Second

// kexecRun is a live kernel upgrade in progress.
type kexecRun struct {
	req   kexecRequest
	units []*unit // the services being checkpointed (health checks paused)
}

// kexecSkip says why u is not checkpointed for a kexec, or "". Such a
// service starts fresh in the next boot.
func kexecSkip(u *unit) string {
	switch {
	case u.Readiness.Method == config.ReadyNotify || u.Readiness.Method == config.ReadySignal || u.Health.Method == config.HealthNotify:
		return "holds a unix socket connected to PID 1's notify socket, which criu cannot dump"
	case u.ctl != nil:
		return "holds PID 1's upgrade socket (fd passing), which criu cannot dump"
	case isolate.Wanted(u.Component):
		return "runs isolated (cgroup or namespaces), which a restore would not recreate"
	}
	return ""
}

// kexecBusy says why a checkpoint, restore or upgrade of u cannot run
// now because of a kernel upgrade, or "".
func (l *loop) kexecBusy(u *unit) string {
	switch {
	case l.kexec != nil:
		return "a live kernel upgrade is in progress"
	case l.afterKexec != nil && l.afterKexec.busy(u.Name):
		return fmt.Sprintf("'%s' is being restored after the kernel upgrade", u.Name)
	}
	return ""
}

// kexecUpgrade starts a real kexec.
func (l *loop) kexecUpgrade(c *control.Call, r kexecRequest) {
	if why := l.kexecRefusal(); why != "" {
		c.Reply(control.Fail("kexec: " + why))
		return
	}
	// Dependency order: a running service started once its requirements
	// were up, so start times order them.
	var running []*unit
	for _, u := range l.units {
		if u.Type == config.Service && u.Name != capability.Kernel && u.alive && (u.state == Active || u.state == Degraded) {
			running = append(running, u)
		}
	}
	slices.SortStableFunc(running, func(a, b *unit) int { return a.since.Compare(b.since) })
	run := &kexecRun{req: r}
	var services []kexec.Service
	var pids []int
	caps := map[string]string{}
	for _, u := range running {
		s := kexec.Service{Name: u.Name, Pid: u.pid, Skip: kexecSkip(u)}
		services = append(services, s)
		if s.Skip != "" {
			l.log.Infof("kexec: not checkpointing '%s': it %s; it starts fresh after the kexec", u.Name, s.Skip)
			continue
		}
		// A stopped service fails its health checks: pause them.
		l.cancelHealth(u)
		run.units = append(run.units, u)
		pids = append(pids, u.pid)
		caps[u.Name] = strings.Join(u.Provides, ",")
	}
	l.kexec = run
	l.log.Infof("kexec: live kernel upgrade to %s (initrd %q): checking, then checkpointing %d of %d running services",
		r.kernel, r.initrd, len(run.units), len(running))
	ctx, cancel := l.untilQuit()
	ctx, cancelBudget := context.WithTimeout(ctx, kexecBudget)
	go func() {
		defer cancel()
		defer cancelBudget()
		d := kexecRunData(r)
		opts := dryRunOptions(r, residentBytes(pids))
		// The checkpoints go where the manifest goes: the state directory.
		store := checkpoint.Store{Dir: opts.StateDir}
		dry := kexec.DryRun(ctx, opts)
		if !dry.OK {
			d.DryRun, d.Phase, d.Error = &dry, failedPhase(dry), strings.Join(kexec.Failures(dry), "; ")
			l.kexecDeliver(func() { l.kexecAbandoned(c, d, nil) })
			return
		}
		d.Append = dry.Append
		release, bootID := kernelRelease(), readBootID()
		p, err := kexec.Prepare(ctx, kexec.Plan{
			StateDir: opts.StateDir, Kernel: r.kernel, Initrd: r.initrd, Cmdline: dry.Append,
			OldKernel: release, BootID: bootID, Services: services, NeedBytes: opts.CheckpointBytes,
			Dump: func(ctx context.Context, s kexec.Service) (kexec.Dumped, error) {
				return l.ckpt.dumpFrozen(ctx, store, s, caps[s.Name])
			},
			Verify: func(dm kexec.Dumped) error {
				cp, err := store.Get(dm.Name, dm.ID)
				if err != nil {
					return err
				}
				return checkpoint.Verify(cp)
			},
			Load: kexec.LoadFile,
		})
		fillKexecRun(&d, p)
		if err != nil {
			d.Phase, d.Error = strings.SplitN(err.Error(), ":", 2)[0], err.Error()
			l.kexecDeliver(func() { l.kexecAbandoned(c, d, p.Dumped) })
			return
		}
		l.kexecDeliver(func() { l.kexecLoaded(c, d, p) })
	}()
}

// kexecDeliver hands f to the loop, to run there, unless the loop has
// ended.
func (l *loop) kexecDeliver(f func()) {
	select {
	case l.kexecNews <- f:
	case <-l.quit:
	}
}

// kexecRefusal says why a kexec cannot start now, or "".
func (l *loop) kexecRefusal() string {
	switch {
	case !l.pid1:
		return "not PID 1 (test mode): a real kexec would replace the kernel of the machine running the tests"
	case l.halt != nil:
		return "shutting down"
	case l.kexec != nil:
		return "a live kernel upgrade is in progress already"
	case len(l.ckpt.ops) > 0:
		return fmt.Sprintf("'%s' is being checkpointed or restored", sortedOps(l.ckpt.ops)[0])
	case len(l.upgrades) > 0:
		return "an upgrade is in progress"
	case l.afterKexec != nil && l.afterKexec.restoring():
		return "the restores of the previous kernel upgrade are not finished"
	}
	return ""
}

func kexecRunData(r kexecRequest) control.KexecRunData {
	return control.KexecRunData{Kernel: r.kernel, Initrd: r.initrd, Append: r.append,
		Checkpointed: []control.KexecServiceState{}, Fresh: []control.KexecServiceState{}}
}

// fillKexecRun copies what Prepare did into d.
func fillKexecRun(d *control.KexecRunData, p kexec.Prepared) {
	for _, e := range p.Manifest.Entries {
		d.Checkpointed = append(d.Checkpointed, control.KexecServiceState{Component: e.ComponentName,
			CheckpointID: e.CheckpointID, OriginalPid: e.OriginalPid})
	}
	for _, s := range p.Manifest.Fresh {
		d.Fresh = append(d.Fresh, control.KexecServiceState{Component: s.ComponentName, Reason: s.Reason})
	}
	d.CheckpointMS, d.LoadMS = p.Manifest.CheckpointMS, p.LoadMS
}

// failedPhase names the first phase of a dry run that failed.
func failedPhase(d control.KexecData) string {
	for _, p := range d.Phases {
		if !p.OK {
			return p.Name
		}
	}
	return ""
}

// dumpFrozen runs off the loop: criu dumps s into store and leaves it
// stopped; the metadata is sealed as for any checkpoint.
func (k *checkpointer) dumpFrozen(ctx context.Context, store checkpoint.Store, s kexec.Service, caps string) (kexec.Dumped, error) {
	criu, version, err := k.criuFor(ctx)
	if err != nil {
		return kexec.Dumped{}, err
	}
	m, start, dumped, err := dumpInto(ctx, criu, version, store, s.Name, s.Pid, caps, checkpoint.LeaveStopped)
	d := kexec.Dumped{Name: s.Name, Pid: s.Pid, ID: m.ID, Path: store.Path(s.Name, m.ID), Timestamp: m.Timestamp, FrozenNS: start.UnixNano()}
	if err != nil {
		if dumped {
			kexec.Resume([]kexec.Dumped{d}) // stopped by the dump, and not in the upgrade
		}
		return kexec.Dumped{}, err
	}
	return d, nil
}

// kexecAbandoned ends an upgrade that failed before the reboot: the
// stopped services run on, their health checks resume. Every service the
// upgrade meant to checkpoint gets the SIGCONT, the one whose dump was cut
// short too.
func (l *loop) kexecAbandoned(c *control.Call, d control.KexecRunData, stopped []kexec.Dumped) {
	for _, u := range l.kexec.units {
		if u.alive {
			stopped = append(stopped, kexec.Dumped{Name: u.Name, Pid: u.pid})
		}
	}
	kexec.Resume(stopped)
	l.kexecResumeHealth()
	l.log.Errorf("kexec abandoned in phase %s: %s; every service runs on", d.Phase, d.Error)
	msg := fmt.Sprintf("kexec abandoned in phase %s: %s; the kernel was not replaced and every service runs on", d.Phase, d.Error)
	text := msg + "\n"
	if d.DryRun != nil {
		text = kexec.Text(*d.DryRun)
	}
	c.Reply(control.FailWith(msg, text, d))
}

// kexecResumeHealth ends the upgrade's hold on its services.
func (l *loop) kexecResumeHealth() {
	for _, u := range l.kexec.units {
		if u.alive && (u.state == Active || u.state == Degraded) && l.byName[u.Name] == u {
			l.watchHealth(u)
		}
	}
	l.kexec = nil
}

// kexecLoaded answers graphctl, then reboots into the loaded kernel.
func (l *loop) kexecLoaded(c *control.Call, d control.KexecRunData, p kexec.Prepared) {
	if l.halt != nil {
		// A shutdown was asked for meanwhile: it wins.
		go kexecUndo(p)
		d.Phase, d.Error = kexec.PhaseExecute, "a shutdown began meanwhile"
		l.kexecAbandoned(c, d, p.Dumped)
		return
	}
	d.Executing = true
	var b strings.Builder
	fmt.Fprintf(&b, "Live kernel upgrade to %s: kernel loaded in %.0f ms; rebooting into it now.\n", d.Kernel, d.LoadMS)
	fmt.Fprintf(&b, "Checkpointed in %.0f ms, restored after the reboot:", d.CheckpointMS)
	for _, s := range d.Checkpointed {
		fmt.Fprintf(&b, " %s", s.Component)
	}
	b.WriteString("\n")
	for _, s := range d.Fresh {
		fmt.Fprintf(&b, "Starts fresh: %s (%s)\n", s.Component, s.Reason)
	}
	l.log.Infof("kexec: %d services checkpointed in %.0f ms, %d start fresh; kernel %s loaded in %.0f ms; rebooting into it",
		len(d.Checkpointed), d.CheckpointMS, len(d.Fresh), d.Kernel, d.LoadMS)
	c.Reply(control.OK(b.String(), d))
	go func() {
		time.Sleep(kexecReplyGrace)
		err := kexec.Execute() // returns only on failure
		kexecUndo(p)
		l.kexecDeliver(func() {
			l.log.Errorf("kexec: %v; the upgrade is abandoned and every service runs on", err)
			kexec.Resume(p.Dumped)
			l.kexecResumeHealth()
		})
	}()
}

// kexecUndo unloads the kernel and removes the manifest and checkpoints
// of an upgrade that will not execute.
func kexecUndo(p kexec.Prepared) {
	kexec.Unload()
	for _, d := range p.Dumped {
		os.RemoveAll(d.Path)
	}
	cmdline, _ := os.ReadFile("/proc/cmdline")
	kexec.RemoveManifest(kexec.StateDirFrom(string(cmdline)))
}

// kernelRelease is the running kernel's release (uname -r).
func kernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
}

// readBootID is this boot's id, "" if unknown.
func readBootID() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
