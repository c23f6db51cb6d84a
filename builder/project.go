// Package builder turns the pinned inputs of a project (yakimg.toml,
// yakimg.lock, the source tree, the Go toolchain) into the image artifacts:
// vmlinuz, initramfs.cpio.zst, disk.img, manifest.json and boot.json.
package builder

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/BurntSushi/toml"

	"yakimg/rootfs"
)

// Project is yakimg.toml: what the image is made of.
type Project struct {
	Root            string   `toml:"-"` // directory holding yakimg.toml and the Go module
	SourceDateEpoch int64    `toml:"source_date_epoch"`
	Kernel          string   `toml:"kernel"`   // Debian kernel package, locked without dependencies
	Packages        []string `toml:"packages"` // Debian packages; yakimg lock adds their dependencies
	rootfs.Sources
	Image struct {
		RootSizeMiB       int `toml:"root_size_mib"`
		CheckpointSizeMiB int `toml:"checkpoint_size_mib"`
		MemoryMB          int `toml:"memory_mb"`
		CPUs              int `toml:"cpus"`
	} `toml:"image"`
}

// ProjectFile and LockFile are the file names at the project root.
const (
	ProjectFile = "yakimg.toml"
	LockFile    = "yakimg.lock"
)

// FindRoot walks up from dir to the directory holding yakimg.toml.
func FindRoot(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for d := abs; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, ProjectFile)); err == nil {
			return d, nil
		}
		if d == filepath.Dir(d) {
			return "", fmt.Errorf("no %s in %s or any parent directory; run yakimg inside a yakimg project or pass --project DIR", ProjectFile, abs)
		}
	}
}

// LoadProject reads root/yakimg.toml; unknown keys are errors, because a
// misspelt key silently ignored would build a different image than meant.
func LoadProject(root string) (*Project, error) {
	path := filepath.Join(root, ProjectFile)
	p := &Project{Root: root}
	md, err := toml.DecodeFile(path, p)
	if err != nil {
		var perr toml.ParseError
		if errors.As(err, &perr) {
			return nil, fmt.Errorf("%s:%d: %s", path, perr.Position.Line, perr.Message)
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		return nil, fmt.Errorf("%s: unknown key %q", path, und[0].String())
	}
	if p.Kernel == "" {
		return nil, fmt.Errorf("%s: kernel is not set (e.g. kernel = \"linux-image-6.1.0-50-cloud-amd64\")", path)
	}
	if len(p.Packages) == 0 {
		return nil, fmt.Errorf("%s: packages is empty", path)
	}
	if err := p.Sources.Normalize(root); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	img := &p.Image
	for _, f := range []struct {
		v   *int
		def int
	}{{&img.RootSizeMiB, 96}, {&img.CheckpointSizeMiB, 64}, {&img.MemoryMB, 1024}, {&img.CPUs, 2}} {
		if *f.v == 0 {
			*f.v = f.def
		}
		if *f.v < 0 {
			return nil, fmt.Errorf("%s: [image] sizes must be positive", path)
		}
	}
	return p, nil
}

// Epoch is SOURCE_DATE_EPOCH from the environment, else the project's.
func (p *Project) Epoch() (time.Time, error) {
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH=%q is not a non-negative integer", s)
		}
		return time.Unix(n, 0).UTC(), nil
	}
	return time.Unix(p.SourceDateEpoch, 0).UTC(), nil
}

// Want is the package lists of the project, as yakimg lock resolves them.
func (p *Project) Want() rootfs.Want {
	return rootfs.Want{Kernel: p.Kernel, Debian: p.Packages}
}
