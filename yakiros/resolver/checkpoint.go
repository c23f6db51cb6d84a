package resolver

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"yakimg/yakiros/capability"
	"yakimg/yakiros/checkpoint"
	"yakimg/yakiros/config"
	"yakimg/yakiros/control"
	"yakimg/yakiros/supervise"
)

// CRIU checkpoints (docs/CHECKPOINT.md). `checkpoint` dumps a running
// service into the persistent store; `restore` stops the component's
// process if one runs, restores a checkpoint detached and re-attaches the
// restored process to the component: its pid, state, capabilities and
// health checks. criu runs in goroutines; their outcomes reach the loop as
// events and the loop replies then. The restored process is reparented to
// PID 1 when criu exits, so its exit reaches the loop's reaper like any
// component's.

// checkpointDir is the store's root: the persistent partition.
var checkpointDir = checkpoint.DefaultDir

// findCRIU locates criu; tests put a stand-in there to make a level of
// upgrade's fallback chain fail on purpose.
var findCRIU = checkpoint.Find

// checkpointer is the loop's checkpoint state.
type checkpointer struct {
	store checkpoint.Store
	procs *checkpoint.Procs
	news  chan ckptOutcome
	ops   map[string]*ckptOp // by component: one operation at a time

	mu      sync.Mutex // guards the cached criu (goroutines find it)
	criu    *checkpoint.CRIU
	version checkpoint.Version
}

func newCheckpointer() *checkpointer {
	return &checkpointer{
		store: checkpoint.Store{Dir: checkpointDir},
		procs: checkpoint.NewProcs(),
		news:  make(chan ckptOutcome),
		ops:   map[string]*ckptOp{},
	}
}

// ckptOp is a checkpoint or restore in progress.
type ckptOp struct {
	call    *control.Call
	u       *unit
	restore bool
	start   time.Time
	// up: the CRIU level of this upgrade (upgrade_criu.go), which takes
	// the outcomes and replies; call is nil then.
	up *upgrade

	// checkpoint
	pid   int
	leave bool
	caps  string
	// restore: the checkpoint is located and verified first, then the
	// running process (if any) stopped, then criu restores.
	id      string
	cp      *checkpoint.Checkpoint // once located
	oldPid  int
	waiting bool // for the old process to be reaped
}

// ckptOutcome is a goroutine's result, delivered to the loop.
type ckptOutcome struct {
	op      *ckptOp
	err     error
	meta    checkpoint.Metadata
	size    int64
	removed []checkpoint.Removed
	pid     int                    // restore: the restored process
	located *checkpoint.Checkpoint // restore: the checkpoint found good
	ms      float64
	// noCRIU: criu is missing or does not work here; nothing was tried.
	// dumped: criu dump succeeded (without --leave-running the process
	// is gone, whatever failed afterwards).
	noCRIU, dumped bool
}

// criuFor finds criu and proves it works (`criu check`) once; a failure is
// not cached, since what it lacked may come later.
func (k *checkpointer) criuFor(ctx context.Context) (checkpoint.CRIU, checkpoint.Version, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.criu != nil {
		return *k.criu, k.version, nil
	}
	path, err := findCRIU()
	if err != nil {
		return checkpoint.CRIU{}, checkpoint.Version{}, err
	}
	c := checkpoint.CRIU{Path: path, Procs: k.procs}
	if err := c.Check(ctx); err != nil {
		return checkpoint.CRIU{}, checkpoint.Version{}, fmt.Errorf("CRIU does not work here: %w", err)
	}
	v, err := c.Version(ctx)
	if err != nil {
		return checkpoint.CRIU{}, checkpoint.Version{}, err
	}
	k.criu, k.version = &c, v
	return c, v, nil
}

// deliver hands o to the loop, unless the loop has ended.
func (l *loop) deliverCheckpoint(o ckptOutcome) {
	select {
	case l.ckpt.news <- o:
	case <-l.quit:
	}
}

// exitedCriu claims the exit of a criu run.
func (l *loop) exitedCriu(e supervise.Exit) bool {
	return l.ckpt.procs.Exited(e.Pid, e.Status)
}

// busy says why u cannot be checkpointed or restored now, or "".
func (l *loop) ckptBusy(u *unit) string {
	switch {
	case l.halt != nil:
		return "shutting down"
	case l.ckpt.ops[u.Name] != nil && l.ckpt.ops[u.Name].restore:
		return fmt.Sprintf("'%s' is being restored", u.Name)
	case l.ckpt.ops[u.Name] != nil:
		return fmt.Sprintf("'%s' is being checkpointed", u.Name)
	case l.upgrades[u.Name] != nil:
		return fmt.Sprintf("'%s' is being upgraded", u.Name)
	case l.kexecBusy(u) != "":
		return l.kexecBusy(u)
	}
	return ""
}

// checkpointCommand: checkpoint <component> [--stop].
func (l *loop) checkpointCommand(c *control.Call) {
	fs := flag.NewFlagSet("checkpoint", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	stop := fs.Bool("stop", false, "")
	name, err := parseNamed(fs, c.Request.Args)
	if err != nil {
		c.Reply(control.Fail("usage: checkpoint <component> [--stop]"))
		return
	}
	u := l.byName[name]
	switch {
	case u == nil:
		c.Reply(control.Fail(fmt.Sprintf("checkpoint: no component '%s'", name)))
		return
	case u.Type != config.Service || u.Name == capability.Kernel:
		c.Reply(control.Fail(fmt.Sprintf("checkpoint: '%s' is not a service", name)))
		return
	case !u.alive || (u.state != Active && u.state != Degraded):
		c.Reply(control.Fail(fmt.Sprintf("checkpoint: '%s' is %s; only a running ACTIVE or DEGRADED service is checkpointed", name, u.state)))
		return
	case l.ckptBusy(u) != "":
		c.Reply(control.Fail("checkpoint: " + l.ckptBusy(u)))
		return
	}
	op := &ckptOp{call: c, u: u, start: time.Now(), pid: u.pid, leave: u.Checkpoint.LeaveRunning && !*stop,
		caps: strings.Join(u.Provides, ",")}
	l.ckpt.ops[name] = op
	if !op.leave {
		// criu ends the process once it is dumped.
		l.withdraw(u)
		l.cancelReadiness(u)
		l.cancelHealth(u)
		u.state, u.reason, u.then = Stopping, "checkpointed and stopped", Failed
	}
	how := "leaving it running"
	if !op.leave {
		how = "stopping it"
	}
	l.log.Infof("checkpointing component '%s' (pid %d), %s", name, u.pid, how)
	policy := checkpointPolicy(u)
	go func() { l.deliverCheckpoint(l.ckpt.dump(op, policy)) }()
}

// checkpointPolicy is the retention after a checkpoint of u.
func checkpointPolicy(u *unit) checkpoint.Policy {
	policy := checkpoint.DefaultPolicy
	if u.Checkpoint.MaxAge > 0 {
		policy.MaxAge = u.Checkpoint.MaxAge
	}
	return policy
}

// parseNamed parses "<name> [flags]" or "[flags] <name>".
func parseNamed(fs *flag.FlagSet, args []string) (string, error) {
	var name string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		name, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return "", err
	}
	switch {
	case name == "" && fs.NArg() == 1:
		return fs.Arg(0), nil
	case name == "" || fs.NArg() > 0:
		return "", errors.New("one component, please")
	}
	return name, nil
}

// dumpInto makes a checkpoint of pid, component name's process, in store:
// a new checkpoint directory, criu's dump (after says what becomes of the
// tree), the sealed metadata. start is when the dump began. dumped says
// whether criu's dump succeeded, even if sealing then failed; on any error
// the checkpoint's directory is gone.
func dumpInto(ctx context.Context, criu checkpoint.CRIU, version checkpoint.Version, store checkpoint.Store, name string, pid int, caps string, after checkpoint.AfterDump) (m checkpoint.Metadata, start time.Time, dumped bool, err error) {
	now := time.Now()
	id, err := store.Create(name, now)
	if err != nil {
		return m, start, false, err
	}
	dir := store.Path(name, id)
	output := checkpoint.OutputOf(pid) // before criu may end the process
	start = time.Now()
	if err := criu.Dump(ctx, pid, dir, after); err != nil {
		os.RemoveAll(dir)
		return m, start, false, err
	}
	m = checkpoint.Metadata{ComponentName: name, ID: id, OriginalPid: pid, Timestamp: now.Unix(),
		Capabilities: caps, CriuVersion: version, LeaveRunning: after == checkpoint.LeaveRunning, DumpMS: msSince(start), Output: output}
	if err := store.Seal(&m); err != nil {
		os.RemoveAll(dir)
		return m, start, true, err
	}
	return m, start, true, nil
}

// dump runs off the loop: criu dump, metadata, retention.
func (k *checkpointer) dump(op *ckptOp, policy checkpoint.Policy) ckptOutcome {
	o := ckptOutcome{op: op}
	ctx := context.Background()
	criu, version, err := k.criuFor(ctx)
	if err != nil {
		o.err, o.noCRIU = err, true
		return o
	}
	after := checkpoint.EndTree
	if op.leave {
		after = checkpoint.LeaveRunning
	}
	m, _, dumped, err := dumpInto(ctx, criu, version, k.store, op.u.Name, op.pid, op.caps, after)
	o.dumped, o.ms = dumped, m.DumpMS
	if err != nil {
		o.err = err
		return o
	}
	id := m.ID
	o.meta = m
	// The metadata's timestamp is the checkpoint's creation, to the second.
	o.removed, err = k.store.Cleanup(op.u.Name, policy, time.Unix(m.Timestamp, 0))
	if err != nil {
		o.err = err
		return o
	}
	for _, r := range o.removed {
		if r.ID == id {
			o.err = fmt.Errorf("checkpoint %s (%d bytes) was removed at once: %s", id, r.Size, r.Reason)
			return o
		}
	}
	if cp, err := k.store.Get(op.u.Name, id); err == nil {
		o.size = cp.Size
	}
	return o
}

func msSince(t time.Time) float64 { return float64(time.Since(t).Microseconds()) / 1000 }

// restoreCommand: restore <component> [id].
func (l *loop) restoreCommand(c *control.Call) {
	args := c.Request.Args
	if len(args) < 1 || len(args) > 2 {
		c.Reply(control.Fail("usage: restore <component> [checkpoint-id]"))
		return
	}
	name, id := args[0], ""
	if len(args) == 2 {
		id = args[1]
	}
	u := l.byName[name]
	switch {
	case u == nil:
		c.Reply(control.Fail(fmt.Sprintf("restore: no component '%s'", name)))
		return
	case u.Type != config.Service || u.Name == capability.Kernel:
		c.Reply(control.Fail(fmt.Sprintf("restore: '%s' is not a service", name)))
		return
	case l.ckptBusy(u) != "":
		c.Reply(control.Fail("restore: " + l.ckptBusy(u)))
		return
	case l.missing(u) != "":
		c.Reply(control.Fail(fmt.Sprintf("restore: requirement '%s' of '%s' is down", l.missing(u), name)))
		return
	}
	op := &ckptOp{call: c, u: u, restore: true, id: id, start: time.Now()}
	l.ckpt.ops[name] = op
	go func() { l.deliverCheckpoint(l.ckpt.locate(op)) }()
}

// locate runs off the loop: criu works, the checkpoint exists and its
// images are intact. Nothing is stopped before this has passed.
func (k *checkpointer) locate(op *ckptOp) ckptOutcome {
	o := ckptOutcome{op: op}
	if _, _, err := k.criuFor(context.Background()); err != nil {
		o.err = err
		return o
	}
	var cp checkpoint.Checkpoint
	var err error
	if op.id == "" {
		cp, err = k.store.Latest(op.u.Name)
	} else {
		cp, err = k.store.Get(op.u.Name, op.id)
	}
	if err == nil {
		err = checkpoint.Verify(cp)
	}
	o.meta, o.err, o.located = cp.Metadata, err, &cp
	return o
}

// located stops the running process, if any, once the checkpoint is found
// good; a checkpoint that is not leaves the component as it is, and lets
// one that is down start fresh at once.
func (l *loop) located(o ckptOutcome) {
	op, u := o.op, o.op.u
	if o.err == nil && (l.byName[u.Name] != u || l.halt != nil) {
		o.err = errors.New("the component was removed or the system is shutting down")
	}
	if o.err != nil {
		delete(l.ckpt.ops, u.Name)
		what := "it keeps running"
		if !u.alive {
			l.resetRestarts(u)
			what = "starting it fresh"
		}
		l.log.Errorf("restore of component '%s' refused: %v; %s", u.Name, o.err, what)
		op.call.Reply(control.Fail(fmt.Sprintf("restore of component '%s' refused: %v; %s", u.Name, o.err, what)))
		return
	}
	op.cp = o.located
	if u.alive {
		op.oldPid, op.waiting = u.pid, true
		if u.state != Stopping {
			l.stop(u, "restoring from checkpoint "+op.cp.ID, Failed)
		}
		return // checkRestores goes on once it is reaped
	}
	l.beginRestore(op)
}

// checkRestores begins the restores whose old process has been reaped. It
// runs after every event, after resolve.
func (l *loop) checkRestores() {
	for _, name := range sortedOps(l.ckpt.ops) {
		op := l.ckpt.ops[name]
		switch {
		case !op.waiting || op.u.alive:
		case l.byName[name] != op.u || l.halt != nil:
			delete(l.ckpt.ops, name)
			op.call.Reply(control.Fail(fmt.Sprintf("restore: '%s' was removed or the system is shutting down", name)))
		default:
			op.waiting = false
			l.beginRestore(op)
		}
	}
}

func sortedOps(m map[string]*ckptOp) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// beginRestore holds u (STARTING, no restart pending) while criu restores.
func (l *loop) beginRestore(op *ckptOp) {
	u := op.u
	u.restartAt = time.Time{}
	u.state, u.reason = Starting, "restoring from a checkpoint"
	out, err := l.logs.Pipe(u.Name)
	if err != nil {
		l.log.Warnf("component '%s': %v; the restored process writes to a closed pipe", u.Name, err)
	}
	l.log.Infof("restoring component '%s' from checkpoint %s", u.Name, op.cp.ID)
	go func() { l.deliverCheckpoint(l.ckpt.restore(op, out)) }()
}

// restore runs off the loop: criu restores the located checkpoint.
func (k *checkpointer) restore(op *ckptOp, out *os.File) ckptOutcome {
	if out != nil {
		defer out.Close()
	}
	o := ckptOutcome{op: op, meta: op.cp.Metadata}
	ctx := context.Background()
	criu, _, err := k.criuFor(ctx)
	if err != nil {
		o.err = err
		return o
	}
	t := time.Now()
	o.pid, o.err = criu.Restore(ctx, *op.cp, out)
	o.ms = msSince(t)
	return o
}

// onCheckpoint applies an outcome and replies.
func (l *loop) onCheckpoint(o ckptOutcome) {
	op, u := o.op, o.op.u
	if op.up != nil {
		l.onCRIUUpgrade(o)
		return
	}
	if op.restore && op.cp == nil {
		l.located(o)
		return
	}
	delete(l.ckpt.ops, u.Name)
	if op.restore {
		l.restored(o)
		return
	}
	if o.err != nil {
		l.log.Errorf("checkpoint of component '%s' failed: %v", u.Name, o.err)
		if !op.leave && u.alive && u.state == Stopping && u.killAt.IsZero() {
			l.activate(u) // criu let it run on
		}
		op.call.Reply(control.Fail(fmt.Sprintf("checkpoint of component '%s' failed: %v", u.Name, o.err)))
		return
	}
	if !op.leave && u.state == Stopping {
		u.reason = "checkpointed to " + o.meta.ID + " and stopped"
	}
	l.log.Infof("component '%s' checkpointed to %s in %.0f ms", u.Name, o.meta.ID, o.ms)
	d := control.CheckpointData{CheckpointInfo: info(checkpoint.Checkpoint{Metadata: o.meta,
		Path: l.ckpt.store.Path(u.Name, o.meta.ID), Size: o.size}), DumpMS: o.ms, Removed: removedData(o.removed)}
	text := fmt.Sprintf("Checkpoint created successfully for component '%s'\nCheckpoint ID: %s\nPath: %s\nImage size: %d bytes, dump took %.0f ms\n",
		u.Name, d.ID, d.Path, d.ImageSize, d.DumpMS)
	for _, r := range d.Removed {
		text += fmt.Sprintf("Removed %s/%s: %s\n", r.Component, r.ID, r.Reason)
	}
	op.call.Reply(control.OK(text, d))
}

// restored re-attaches a restored process, or lets the component start
// fresh when the restore failed.
func (l *loop) restored(o ckptOutcome) {
	op, u := o.op, o.op.u
	o.err = l.restoreErr(o)
	if o.err != nil {
		l.log.Errorf("restore of component '%s' failed: %v; starting it fresh", u.Name, o.err)
		if u.state == Starting && !u.alive {
			u.state, u.reason = Inactive, "restore failed: "+o.err.Error()
		}
		op.call.Reply(control.Fail(fmt.Sprintf("restore of component '%s' failed: %v; starting it fresh", u.Name, o.err)))
		return
	}
	l.reattach(u, o)
	d := control.RestoreData{Component: u.Name, ID: o.meta.ID, Pid: o.pid, OldPid: op.oldPid, State: u.state.String(), RestoreMS: o.ms}
	op.call.Reply(control.OK(fmt.Sprintf("Component '%s' restored successfully from checkpoint %s\nPid: %d, state %s, restore took %.0f ms\n",
		u.Name, d.ID, d.Pid, d.State, d.RestoreMS), d))
}

// restoreErr says why the outcome of a criu restore cannot be re-attached
// to its component, or nil.
func (l *loop) restoreErr(o ckptOutcome) error {
	switch {
	case o.err != nil:
		return o.err
	case l.byName[o.op.u.Name] != o.op.u:
		syscall.Kill(o.pid, syscall.SIGKILL)
		return errors.New("the component was removed meanwhile")
	case unix.Kill(o.pid, 0) != nil:
		return fmt.Errorf("restored process %d ended at once", o.pid)
	}
	return nil
}

// reattach makes the restored process of o u's process: its exit is u's,
// and u is ACTIVE with its capabilities and health checks.
func (l *loop) reattach(u *unit, o ckptOutcome) {
	u.starts++
	u.pid, u.alive, u.since, u.reason, u.status = o.pid, true, time.Now(), "", ""
	u.health = healthState{}
	l.byPid[o.pid] = u
	l.log.Infof("component '%s' restored from checkpoint %s (pid %d) in %.0f ms", u.Name, o.meta.ID, o.pid, o.ms)
	// Only a ready (ACTIVE or DEGRADED) process is checkpointed, and the
	// restored one carries on from there: it will not report readiness a
	// second time.
	l.activate(u)
}

func info(c checkpoint.Checkpoint) control.CheckpointInfo {
	return control.CheckpointInfo{Component: c.ComponentName, ID: c.ID, Path: c.Path, Timestamp: c.Timestamp,
		OriginalPid: c.OriginalPid, ImageSize: c.ImageSize, Size: c.Size, Capabilities: c.Capabilities,
		CriuVersion: c.CriuVersion.String(), LeaveRunning: c.LeaveRunning}
}

func removedData(rs []checkpoint.Removed) []control.CheckpointRemoved {
	out := []control.CheckpointRemoved{}
	for _, r := range rs {
		out = append(out, control.CheckpointRemoved(r))
	}
	return out
}

// The store commands read and delete files only: they run in a goroutine
// and reply by themselves.

// checkpointListCommand: checkpoint-list [component].
func (l *loop) checkpointListCommand(c *control.Call) {
	args := c.Request.Args
	if len(args) > 1 {
		c.Reply(control.Fail("usage: checkpoint-list [component]"))
		return
	}
	comp := ""
	if len(args) == 1 {
		comp = args[0]
	}
	store := l.ckpt.store
	go func() {
		cs, bad, err := store.List(comp)
		if err != nil {
			c.Reply(control.Fail(err.Error()))
			return
		}
		d := control.CheckpointListData{Checkpoints: []control.CheckpointInfo{}, Invalid: []string{}}
		for _, e := range bad {
			d.Invalid = append(d.Invalid, e.Error())
		}
		var b strings.Builder
		switch {
		case len(cs) == 0 && comp != "":
			fmt.Fprintf(&b, "No checkpoints found for component '%s'\n", comp)
		case len(cs) == 0:
			b.WriteString("No checkpoints found\n")
		case comp != "":
			fmt.Fprintf(&b, "Available checkpoints for %s:\n", comp)
		default:
			b.WriteString("Available checkpoints:\n")
		}
		for _, cp := range cs {
			d.Checkpoints = append(d.Checkpoints, info(cp))
			fmt.Fprintf(&b, "  %s: %s (%s, %d bytes)\n", cp.ID, cp.ComponentName, cp.Time().UTC().Format("2006-01-02 15:04:05"), cp.Size)
		}
		for _, s := range d.Invalid {
			fmt.Fprintf(&b, "  invalid: %s\n", s)
		}
		c.Reply(control.OK(b.String(), d))
	}()
}

// checkpointRmCommand: checkpoint-rm <component> <id>.
func (l *loop) checkpointRmCommand(c *control.Call) {
	args := c.Request.Args
	if len(args) != 2 {
		c.Reply(control.Fail("usage: checkpoint-rm <component> <id>"))
		return
	}
	if op := l.ckpt.ops[args[0]]; op != nil && op.restore {
		c.Reply(control.Fail(fmt.Sprintf("checkpoint-rm: '%s' is being restored", args[0])))
		return
	}
	store := l.ckpt.store
	go func() {
		cp, err := store.Get(args[0], args[1])
		size := cp.Size
		if err != nil && !errors.Is(err, checkpoint.ErrCorrupt) {
			c.Reply(control.Fail(fmt.Sprintf("checkpoint-rm: %v", err)))
			return
		}
		if err := store.Remove(args[0], args[1]); err != nil {
			c.Reply(control.Fail(fmt.Sprintf("checkpoint-rm: %v", err)))
			return
		}
		d := control.CheckpointCleanupData{Removed: []control.CheckpointRemoved{{Component: args[0], ID: args[1], Size: size, Reason: "checkpoint-rm"}}, FreedBytes: size}
		c.Reply(control.OK(fmt.Sprintf("Checkpoint %s removed successfully for component '%s'\n", args[1], args[0]), d))
	}()
}

// checkpointCleanupCommand: checkpoint-cleanup [--max-age D] [--keep N]
// [--quota BYTES] [component]: retention now, with the defaults where no
// option says otherwise.
func (l *loop) checkpointCleanupCommand(c *control.Call) {
	fs := flag.NewFlagSet("checkpoint-cleanup", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	maxAge := fs.String("max-age", "", "")
	keep := fs.Int("keep", checkpoint.DefaultPolicy.Keep, "")
	quota := fs.Int64("quota", checkpoint.DefaultPolicy.Quota, "")
	const usage = "usage: checkpoint-cleanup [--max-age D] [--keep N] [--quota BYTES] [component]"
	if err := fs.Parse(c.Request.Args); err != nil || fs.NArg() > 1 || *keep < 0 || *quota < 0 {
		c.Reply(control.Fail(usage))
		return
	}
	p := checkpoint.Policy{MaxAge: checkpoint.DefaultPolicy.MaxAge, Keep: *keep, Quota: *quota}
	if *maxAge != "" {
		d, err := checkpoint.ParseMaxAge(*maxAge)
		if err != nil {
			c.Reply(control.Fail(fmt.Sprintf("checkpoint-cleanup: %v", err)))
			return
		}
		p.MaxAge = d
	}
	comp := fs.Arg(0)
	for name, op := range l.ckpt.ops {
		if op.restore && (comp == "" || comp == name) {
			c.Reply(control.Fail(fmt.Sprintf("checkpoint-cleanup: '%s' is being restored", name)))
			return
		}
	}
	store := l.ckpt.store
	go func() {
		removed, err := store.Cleanup(comp, p, time.Now())
		d := control.CheckpointCleanupData{Removed: removedData(removed)}
		var b strings.Builder
		for _, r := range removed {
			d.FreedBytes += r.Size
			fmt.Fprintf(&b, "Removed %s/%s (%d bytes): %s\n", r.Component, r.ID, r.Size, r.Reason)
		}
		if err != nil {
			c.Reply(control.FailWith(fmt.Sprintf("checkpoint-cleanup: %v", err), b.String(), d))
			return
		}
		fmt.Fprintf(&b, "Cleanup complete: %d checkpoints removed, %d bytes freed\n", len(removed), d.FreedBytes)
		c.Reply(control.OK(b.String(), d))
	}()
}

// checkpointUsageCommand: checkpoint-usage.
func (l *loop) checkpointUsageCommand(c *control.Call) {
	if len(c.Request.Args) > 0 {
		c.Reply(control.Fail("checkpoint-usage takes no arguments"))
		return
	}
	store := l.ckpt.store
	go func() {
		us, err := store.Usage()
		if err != nil {
			c.Reply(control.Fail(err.Error()))
			return
		}
		d := control.CheckpointUsageData{Dir: store.Dir, Components: []control.CheckpointUsage{},
			QuotaBytes: checkpoint.DefaultPolicy.Quota, Keep: checkpoint.DefaultPolicy.Keep}
		var st unix.Statfs_t
		if err := unix.Statfs(store.Dir, &st); err == nil {
			d.FreeBytes = st.Bavail * uint64(st.Bsize)
		}
		var b strings.Builder
		fmt.Fprintf(&b, "Checkpoint storage %s\n", store.Dir)
		fmt.Fprintf(&b, "%-30s %11s %14s\n", "COMPONENT", "CHECKPOINTS", "BYTES")
		for _, u := range us {
			d.Components = append(d.Components, control.CheckpointUsage(u))
			d.Checkpoints += u.Checkpoints
			d.Bytes += u.Bytes
			fmt.Fprintf(&b, "%-30s %11d %14d\n", u.Component, u.Checkpoints, u.Bytes)
		}
		fmt.Fprintf(&b, "Total: %d checkpoints, %d bytes; quota %d bytes and %d checkpoints per component; %d bytes free\n",
			d.Checkpoints, d.Bytes, d.QuotaBytes, d.Keep, d.FreeBytes)
		c.Reply(control.OK(b.String(), d))
	}()
}

// checkpointCommands dispatches the checkpoint commands.
func (l *loop) checkpointCommands(c *control.Call) {
	switch c.Request.Command {
	case "checkpoint":
		l.checkpointCommand(c)
	case "restore":
		l.restoreCommand(c)
	case "checkpoint-list":
		l.checkpointListCommand(c)
	case "checkpoint-rm":
		l.checkpointRmCommand(c)
	case "checkpoint-cleanup":
		l.checkpointCleanupCommand(c)
	default:
		l.checkpointUsageCommand(c)
	}
}
