package vm

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"yakimg/internal/atomicfile"
)

// BootSpecFile is the name of the boot spec in an artifact directory.
const BootSpecFile = "boot.json"

// BootSpec is boot.json: the QEMU settings an image expects, written by the
// builder next to the artifacts.
type BootSpec struct {
	// Kernel, Initrd and Disk are file names relative to the artifact
	// directory; Initrd and Disk may be empty.
	Kernel   string `json:"kernel"`
	Initrd   string `json:"initrd,omitempty"`
	Disk     string `json:"disk,omitempty"`
	Append   string `json:"append"` // kernel command line
	MemoryMB int    `json:"memory_mb"`
	CPUs     int    `json:"cpus"`
	Machine  string `json:"machine"`
}

// LoadBootSpec reads dir/boot.json. Unknown keys are refused, so that a
// misspelt setting is not silently ignored.
func LoadBootSpec(dir string) (*BootSpec, error) {
	path := filepath.Join(dir, BootSpecFile)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load boot spec: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var b BootSpec
	if err := dec.Decode(&b); err != nil {
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	if err := b.check(); err != nil {
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	return &b, nil
}

// Write writes dir/boot.json atomically. The bytes depend only on b.
func (b *BootSpec) Write(dir string) error {
	if err := b.check(); err != nil {
		return fmt.Errorf("write boot spec: %w", err)
	}
	data, err := json.MarshalIndent(b, "", "  ")
	if err != nil {
		return fmt.Errorf("write boot spec: %w", err)
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, BootSpecFile), append(data, '\n')); err != nil {
		return fmt.Errorf("write boot spec: %w", err)
	}
	return nil
}

// Config turns the spec into a Config for the artifacts in dir. The caller
// adds the run's own settings (timeout, accelerator, console log...).
func (b *BootSpec) Config(dir string) (Config, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return Config{}, fmt.Errorf("artifact directory: %w", err)
	}
	file := func(name string) string {
		if name == "" {
			return ""
		}
		return filepath.Join(abs, name)
	}
	return Config{
		Kernel:   file(b.Kernel),
		Initrd:   file(b.Initrd),
		Disk:     file(b.Disk),
		Append:   b.Append,
		MemoryMB: b.MemoryMB,
		CPUs:     b.CPUs,
		Machine:  b.Machine,
	}, nil
}

// check keeps every file inside the artifact directory: an archive from
// elsewhere must not make the host read /etc/shadow as a "kernel".
func (b *BootSpec) check() error {
	if b.Kernel == "" {
		return errors.New("no kernel")
	}
	for _, name := range []string{b.Kernel, b.Initrd, b.Disk} {
		if name != "" && !filepath.IsLocal(name) {
			return fmt.Errorf("%q is not a path inside the artifact directory", name)
		}
	}
	if b.MemoryMB < 0 || b.CPUs < 0 {
		return fmt.Errorf("memory %d MB, %d CPUs: must not be negative", b.MemoryMB, b.CPUs)
	}
	return nil
}
