package control

// The Data of the checkpoint commands (docs/CHECKPOINT.md).

// CheckpointInfo is one stored checkpoint.
type CheckpointInfo struct {
	Component    string `json:"component"`
	ID           string `json:"id"`
	Path         string `json:"path"`
	Timestamp    int64  `json:"timestamp"` // Unix seconds
	OriginalPid  int    `json:"original_pid"`
	ImageSize    int64  `json:"image_size"` // bytes of the CRIU images
	Size         int64  `json:"size"`       // bytes on disk, logs and metadata included
	Capabilities string `json:"capabilities"`
	CriuVersion  string `json:"criu_version"`
	LeaveRunning bool   `json:"leave_running"`
}

// CheckpointData answers "checkpoint <component>".
type CheckpointData struct {
	CheckpointInfo
	DumpMS  float64             `json:"dump_ms"`
	Removed []CheckpointRemoved `json:"removed"` // what retention removed afterwards
}

// CheckpointRemoved is a checkpoint that retention or checkpoint-rm removed.
type CheckpointRemoved struct {
	Component string `json:"component"`
	ID        string `json:"id"`
	Size      int64  `json:"size"`
	Reason    string `json:"reason"`
}

// RestoreData answers "restore <component> [id]".
type RestoreData struct {
	Component string  `json:"component"`
	ID        string  `json:"id"`
	Pid       int     `json:"pid"`     // the restored process
	OldPid    int     `json:"old_pid"` // the process stopped to make room; 0 if none ran
	State     string  `json:"state"`   // the component's state once re-attached
	RestoreMS float64 `json:"restore_ms"`
}

// CheckpointListData answers "checkpoint-list [component]".
type CheckpointListData struct {
	Checkpoints []CheckpointInfo `json:"checkpoints"` // by component, newest first
	Invalid     []string         `json:"invalid"`     // directories without valid metadata, and why
}

// CheckpointCleanupData answers "checkpoint-cleanup" and "checkpoint-rm".
type CheckpointCleanupData struct {
	Removed    []CheckpointRemoved `json:"removed"`
	FreedBytes int64               `json:"freed_bytes"`
}

// CheckpointUsageData answers "checkpoint-usage".
type CheckpointUsageData struct {
	Dir         string            `json:"dir"`
	Components  []CheckpointUsage `json:"components"`
	Checkpoints int               `json:"checkpoints"`
	Bytes       int64             `json:"bytes"`
	QuotaBytes  int64             `json:"quota_bytes"` // per component
	Keep        int               `json:"keep"`        // per component
	FreeBytes   uint64            `json:"free_bytes"`  // free on the file system
}

// CheckpointUsage is one component's share.
type CheckpointUsage struct {
	Component   string `json:"component"`
	Checkpoints int    `json:"checkpoints"`
	Bytes       int64  `json:"bytes"`
}
