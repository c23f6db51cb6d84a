package kexec

import (
	"context"
	"fmt"
	"os"
	"strings"

	"yakimg/yakiros/control"
)

// The seven phases of a real kexec, by the names the reference gives them.
const (
	PhaseValidation          = "validation"
	PhasePreKexecInfo        = "pre-kexec-info"
	PhaseCheckpoint          = "checkpoint"
	PhaseValidateCheckpoints = "validate-checkpoints"
	PhasePersistManifest     = "persist-manifest"
	PhaseLoadKernel          = "load-kernel"
	PhaseExecute             = "execute"
)

// Phases lists the phase names in order.
var Phases = []string{PhaseValidation, PhasePreKexecInfo, PhaseCheckpoint, PhaseValidateCheckpoints,
	PhasePersistManifest, PhaseLoadKernel, PhaseExecute}

// Check statuses.
const (
	Pass = "pass"
	Fail = "fail"
	Skip = "skip"
)

// DefaultStateDir is where checkpoints and the manifest go: a partition of
// its own that survives the kexec (DESIGN §5).
const DefaultStateDir = "/checkpoint"

// Options say what a dry run checks and where the system's facts are read.
type Options struct {
	Kernel   string // the new kernel's bzImage
	Initrd   string // "" for none
	Append   string // "" reuses the running kernel's command line (ProcDir/cmdline)
	StateDir string // DefaultStateDir unless set
	// CheckpointBytes is what checkpoints of the running services would
	// take on StateDir: the resolver passes the sum of their anonymous
	// resident memory (what CRIU's page images hold).
	CheckpointBytes int64
	CRIU            string // the criu binary; "" looks it up in $PATH (or the usual directories without one)

	ProcDir string // /proc unless set
	SysDir  string // /sys unless set
	// KexecProbe is the kexec_file_load probe; nil means ProbeKexecFileLoad.
	KexecProbe func() error
}

// DryRun runs every check of the seven phases and changes nothing but a
// probe file it creates and removes in StateDir. It takes a few seconds at
// most (criu runs twice, each bounded): run it off any event loop.
func DryRun(ctx context.Context, o Options) control.KexecData {
	o.defaults()
	s := system{o: o}
	d := control.KexecData{Kernel: o.Kernel, Initrd: o.Initrd, DryRun: true, OK: true}

	hdr, kernelCheck := s.kernel()
	initrdSize, initrdCheck := s.initrd()
	cmdline, cmdlineCheck := s.cmdline(hdr)
	d.Append = cmdline
	criu, criuCheck := s.criu(ctx)
	dirOK, dirCheck := s.stateDir()

	phases := [][]control.KexecCheck{
		{kernelCheck, initrdCheck, cmdlineCheck, s.privileges()},
		{dirCheck, s.writeProbe(dirOK)},
		{criuCheck, s.freeSpace(dirOK)},
		{s.criuCheck(ctx, criu)},
		{s.persistent(dirOK)},
		{s.kexecFileLoad(), s.loadEnabled(), s.lockdown(), s.memory(hdr, initrdSize)},
		{s.rebootKexec()},
	}
	for i, checks := range phases {
		p := control.KexecPhase{Number: i + 1, Name: Phases[i], OK: true, Checks: checks}
		for _, c := range checks {
			if c.Status == Fail {
				p.OK, d.OK = false, false
			}
		}
		d.Phases = append(d.Phases, p)
	}
	return d
}

func (o *Options) defaults() {
	if o.StateDir == "" {
		o.StateDir = DefaultStateDir
	}
	if o.ProcDir == "" {
		o.ProcDir = "/proc"
	}
	if o.SysDir == "" {
		o.SysDir = "/sys"
	}
	if o.KexecProbe == nil {
		o.KexecProbe = ProbeKexecFileLoad
	}
}

// Failures lists "phase/check: detail" for every failed check, in order.
func Failures(d control.KexecData) []string {
	var out []string
	for _, p := range d.Phases {
		for _, c := range p.Checks {
			if c.Status == Fail {
				out = append(out, fmt.Sprintf("%s/%s: %s", p.Name, c.Name, c.Detail))
			}
		}
	}
	return out
}

// Text renders d as the human table graphctl prints.
func Text(d control.KexecData) string {
	var b strings.Builder
	fmt.Fprintf(&b, "kexec dry run: kernel %s, initrd %s\n", d.Kernel, or(d.Initrd, "none"))
	fmt.Fprintf(&b, "command line: %s\n\n", or(d.Append, "(empty)"))
	fmt.Fprintf(&b, "%-24s %-18s %-6s %s\n", "PHASE", "CHECK", "RESULT", "DETAIL")
	for _, p := range d.Phases {
		for i, c := range p.Checks {
			phase := ""
			if i == 0 {
				phase = fmt.Sprintf("%d %s", p.Number, p.Name)
			}
			fmt.Fprintf(&b, "%-24s %-18s %-6s %s\n", phase, c.Name, strings.ToUpper(c.Status), c.Detail)
		}
	}
	b.WriteByte('\n')
	if d.OK {
		b.WriteString("Verdict: every phase passed; a kexec to this kernel could proceed (nothing was changed).\n")
		return b.String()
	}
	var failed []string
	for _, p := range d.Phases {
		if !p.OK {
			failed = append(failed, p.Name)
		}
	}
	fmt.Fprintf(&b, "Verdict: FAILED in phase(s) %s; a kexec would not proceed.\n", strings.Join(failed, ", "))
	return b.String()
}

func or(s, alt string) string {
	if s == "" {
		return alt
	}
	return s
}

func pass(name, format string, args ...any) control.KexecCheck {
	return control.KexecCheck{Name: name, Status: Pass, Detail: fmt.Sprintf(format, args...)}
}

func fail(name, format string, args ...any) control.KexecCheck {
	return control.KexecCheck{Name: name, Status: Fail, Detail: fmt.Sprintf(format, args...)}
}

func skip(name, format string, args ...any) control.KexecCheck {
	return control.KexecCheck{Name: name, Status: Skip, Detail: fmt.Sprintf(format, args...)}
}

// openRegular opens path and checks that it is a regular file.
func openRegular(path string) (*os.File, os.FileInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, nil, fmt.Errorf("%s is not a regular file (%v)", path, fi.Mode().Type())
	}
	return f, fi, nil
}

// StateDirFrom returns the state directory a kernel command line names
// with yakiros.checkpoint=<dir>, or DefaultStateDir.
func StateDirFrom(cmdline string) string {
	for _, w := range strings.Fields(cmdline) {
		if dir, ok := strings.CutPrefix(w, "yakiros.checkpoint="); ok && dir != "" {
			return dir
		}
	}
	return DefaultStateDir
}
