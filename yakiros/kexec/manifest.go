package kexec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"yakimg/internal/atomicfile"
)

// ManifestFile is the name of the manifest in the state directory: what a
// live kernel upgrade checkpointed, for the next boot to restore.
const ManifestFile = "manifest.json"

// ManifestVersion is the manifest format this YakirOS writes and reads.
// A manifest of a newer format is ignored (ErrNewerManifest): its meaning
// is unknown here.
const ManifestVersion = 1

// maxManifest bounds what is read: a manifest lists a few hundred
// services at most.
const maxManifest = 1 << 20

// Errors of ReadManifest.
var (
	ErrNoManifest    = errors.New("no kexec manifest")
	ErrBadManifest   = errors.New("kexec manifest unusable")
	ErrNewerManifest = errors.New("kexec manifest of a newer format")
	ErrStaleManifest = errors.New("kexec manifest written in this very boot")
)

// Manifest is manifest.json. The first eight fields keep the reference's
// names and order (yakiros-reference §12.3); the rest are YakirOS's.
type Manifest struct {
	Version          int     `json:"version"`
	EntryCount       int     `json:"entry_count"`
	CreationTime     int64   `json:"creation_time"` // Unix seconds
	OldKernelVersion string  `json:"old_kernel_version"`
	NewKernelPath    string  `json:"new_kernel_path"`
	InitrdPath       string  `json:"initrd_path"`
	Cmdline          string  `json:"cmdline"`
	Entries          []Entry `json:"entries"` // in restore order

	// BootID is the boot that wrote the manifest: one found in the same
	// boot was not followed by a kexec and is ignored.
	BootID string `json:"boot_id"`
	// LastPid is the kernel's last allocated pid when the checkpoints were
	// taken. The next boot moves its pid counter past it before it forks
	// anything, so that every pid of the checkpointed processes is free
	// for their restore.
	LastPid int `json:"last_pid"`
	// Fresh lists the running services that were not checkpointed, and
	// why: they start fresh in the next boot.
	Fresh []Skipped `json:"fresh"`
	// CheckpointMS is how long the checkpoint phase took.
	CheckpointMS float64 `json:"checkpoint_ms"`
}

// Entry is one checkpointed service.
type Entry struct {
	ComponentName   string `json:"component_name"`
	CheckpointID    string `json:"checkpoint_id"`
	CheckpointPath  string `json:"checkpoint_path"`
	OriginalPid     int    `json:"original_pid"`
	Timestamp       int64  `json:"timestamp"`        // Unix seconds
	RestorePriority int    `json:"restore_priority"` // position in dependency order, 0 first
	// FrozenNS is the wall clock (Unix ns) when the dump stopped the
	// service: its downtime starts there.
	FrozenNS int64 `json:"frozen_ns"`
}

// Skipped is a service left out of the checkpoints, and why.
type Skipped struct {
	ComponentName string `json:"component_name"`
	Reason        string `json:"reason"`
}

// Encode renders m: two-space indent, one field a line.
func (m Manifest) Encode() ([]byte, error) {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode kexec manifest: %w", err)
	}
	return append(b, '\n'), nil
}

// DecodeManifest parses a manifest. A truncated or otherwise malformed one
// fails with ErrBadManifest, one of a newer format with ErrNewerManifest:
// either way the caller boots normally.
func DecodeManifest(b []byte) (Manifest, error) {
	// The version first, leniently: a newer format may have other fields.
	// (Unmarshal also refuses trailing data.)
	var head struct {
		Version *int `json:"version"`
	}
	if err := json.Unmarshal(b, &head); err != nil {
		return Manifest{}, fmt.Errorf("%w: %v", ErrBadManifest, err)
	}
	switch {
	case head.Version == nil:
		return Manifest{}, fmt.Errorf("%w: no version", ErrBadManifest)
	case *head.Version > ManifestVersion:
		return Manifest{}, fmt.Errorf("%w: version %d, this YakirOS reads version %d", ErrNewerManifest, *head.Version, ManifestVersion)
	case *head.Version < 1:
		return Manifest{}, fmt.Errorf("%w: version %d", ErrBadManifest, *head.Version)
	}
	var m Manifest
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&m); err != nil {
		return Manifest{}, fmt.Errorf("%w: %v", ErrBadManifest, err)
	}
	if m.EntryCount != len(m.Entries) {
		return Manifest{}, fmt.Errorf("%w: entry_count %d but %d entries", ErrBadManifest, m.EntryCount, len(m.Entries))
	}
	for i, e := range m.Entries {
		if e.ComponentName == "" || e.CheckpointID == "" || e.OriginalPid <= 0 {
			return Manifest{}, fmt.Errorf("%w: entry %d lacks component_name, checkpoint_id or original_pid", ErrBadManifest, i)
		}
	}
	return m, nil
}

// WriteManifest writes dir/manifest.json durably: a temporary file,
// fsync, rename, fsync of the directory. Its error says what failed, a
// full file system included (errors.Is(err, syscall.ENOSPC)).
func WriteManifest(dir string, m Manifest) error {
	m.Version, m.EntryCount = ManifestVersion, len(m.Entries)
	b, err := m.Encode()
	if err != nil {
		return err
	}
	return atomicfile.WriteDurable(filepath.Join(dir, ManifestFile), b)
}

// ReadManifest reads and decodes dir/manifest.json. ErrNoManifest means
// there is none (a normal boot); ErrBadManifest and ErrNewerManifest that
// it cannot be used; ErrStaleManifest that bootID (the running boot) wrote
// it, so no kexec followed.
func ReadManifest(dir, bootID string) (Manifest, error) {
	p := filepath.Join(dir, ManifestFile)
	f, err := os.Open(p)
	if errors.Is(err, os.ErrNotExist) {
		return Manifest{}, ErrNoManifest
	}
	if err != nil {
		return Manifest{}, fmt.Errorf("%w: %v", ErrBadManifest, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxManifest+1))
	if err != nil {
		return Manifest{}, fmt.Errorf("%w: read %s: %v", ErrBadManifest, p, err)
	}
	if len(b) > maxManifest {
		return Manifest{}, fmt.Errorf("%w: %s is larger than %d bytes", ErrBadManifest, p, maxManifest)
	}
	m, err := DecodeManifest(b)
	if err != nil {
		return Manifest{}, err
	}
	if bootID != "" && m.BootID == bootID {
		return Manifest{}, fmt.Errorf("%w (boot %s)", ErrStaleManifest, bootID)
	}
	return m, nil
}

// RemoveManifest deletes dir/manifest.json (durably), so that it is used
// at most once. A missing manifest is no error.
func RemoveManifest(dir string) error {
	if err := atomicfile.RemoveDurable(filepath.Join(dir, ManifestFile)); err != nil {
		return fmt.Errorf("kexec manifest: %w", err)
	}
	return nil
}
