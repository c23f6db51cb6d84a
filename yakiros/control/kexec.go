package control

// KexecData answers "kexec --dry-run": one verdict per phase of the real
// kexec (yakiros-reference §12.2), each made of named checks.
type KexecData struct {
	Kernel string       `json:"kernel"`
	Initrd string       `json:"initrd"` // "" when none was given
	Append string       `json:"append"` // the command line the new kernel would get
	DryRun bool         `json:"dry_run"`
	OK     bool         `json:"ok"` // every phase passed
	Phases []KexecPhase `json:"phases"`
}

// KexecPhase is one of the seven phases, in order.
type KexecPhase struct {
	Number int          `json:"number"` // 1..7
	Name   string       `json:"name"`   // validation, pre-kexec-info, checkpoint, validate-checkpoints, persist-manifest, load-kernel, execute
	OK     bool         `json:"ok"`     // no check failed
	Checks []KexecCheck `json:"checks"`
}

// KexecCheck is one check of a phase.
type KexecCheck struct {
	Name   string `json:"name"`
	Status string `json:"status"` // pass | fail | skip (could not run: what it needs failed elsewhere)
	Detail string `json:"detail"` // what was found; why it failed or was skipped
}
