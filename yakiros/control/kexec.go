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

// KexecRunData answers a real "kexec <kernel> --yes": the kernel is loaded
// and the machine reboots into it right after this answer; or, when Error
// is set, the upgrade was abandoned and every service runs on.
type KexecRunData struct {
	Kernel       string              `json:"kernel"`
	Initrd       string              `json:"initrd"`
	Append       string              `json:"append"`
	Executing    bool                `json:"executing"`         // the reboot into the new kernel follows
	Phase        string              `json:"phase,omitempty"`   // where an abandoned upgrade stopped
	Error        string              `json:"error,omitempty"`   // why it was abandoned
	Checkpointed []KexecServiceState `json:"checkpointed"`      // restored in the next boot, in this order
	Fresh        []KexecServiceState `json:"fresh"`             // not checkpointed: they start fresh, and why
	DryRun       *KexecData          `json:"dry_run,omitempty"` // the validation, when it failed
	CheckpointMS float64             `json:"checkpoint_ms"`
	LoadMS       float64             `json:"load_ms"`
}

// KexecStatusData answers "kexec-status": what the boot after a live
// kernel upgrade restored.
type KexecStatusData struct {
	AfterKexec   bool                `json:"after_kexec"` // this boot read a manifest
	Manifest     string              `json:"manifest"`    // its path
	Ignored      string              `json:"ignored"`     // why a manifest found was not used
	OldKernel    string              `json:"old_kernel"`
	NewKernel    string              `json:"new_kernel"`
	OldBootID    string              `json:"old_boot_id"`
	CheckpointMS float64             `json:"checkpoint_ms"` // the checkpoint phase before the kexec
	Services     []KexecServiceState `json:"services"`
}

// KexecServiceState is one service of a live kernel upgrade.
type KexecServiceState struct {
	Component    string  `json:"component"`
	CheckpointID string  `json:"checkpoint_id,omitempty"`
	OriginalPid  int     `json:"original_pid,omitempty"`
	Pid          int     `json:"pid,omitempty"`     // the restored process
	Outcome      string  `json:"outcome,omitempty"` // kexec-status: pending, restoring, restored, fresh
	Reason       string  `json:"reason,omitempty"`  // why it starts fresh
	RestoreMS    float64 `json:"restore_ms,omitempty"`
	// FrozenNS is when the checkpoint stopped it (wall clock, Unix ns; the
	// next boot's clock starts from the RTC, to the second).
	FrozenNS int64 `json:"frozen_ns,omitempty"`
}
