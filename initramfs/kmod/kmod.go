// Package kmod reads kernel modules' own metadata (the ELF .modinfo
// section) and computes the order in which stage 1 must load them. The order
// always comes from the modules themselves, never from a hand-written list,
// so a kernel update cannot silently break it.
package kmod

import (
	"bytes"
	"compress/gzip"
	"debug/elf"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"yakimg/rootfs"
)

// Module is one loadable kernel module.
type Module struct {
	Name     string   // as the kernel knows it: '-' normalised to '_'
	Path     string   // tree path of the .ko file; set by Index
	Depends  []string // modules that must be loaded first, normalised
	Vermagic string   // e.g. "6.1.0-50-cloud-amd64 SMP preempt mod_unload modversions "
}

// moduleSuffixes are the file names the kernel's module loader accepts.
var moduleSuffixes = []string{".ko", ".ko.xz", ".ko.zst", ".ko.gz"}

// ParseModinfo reads name, depends and vermagic from a module image, which
// may be a plain ELF .ko or one compressed with xz, zstd or gzip.
func ParseModinfo(ko []byte) (Module, error) {
	raw, err := decompress(ko)
	if err != nil {
		return Module{}, err
	}
	f, err := elf.NewFile(bytes.NewReader(raw))
	if err != nil {
		return Module{}, fmt.Errorf("modinfo: not an ELF module: %w", err)
	}
	defer f.Close()
	sec := f.Section(".modinfo")
	if sec == nil {
		return Module{}, fmt.Errorf("modinfo: no .modinfo section")
	}
	data, err := sec.Data()
	if err != nil {
		return Module{}, fmt.Errorf("modinfo: read .modinfo: %w", err)
	}
	var m Module
	for _, field := range bytes.Split(data, []byte{0}) {
		key, value, ok := strings.Cut(string(field), "=")
		if !ok {
			continue // padding between entries
		}
		switch key {
		case "name":
			m.Name = normalise(value)
		case "depends":
			for _, d := range strings.Split(value, ",") {
				if d != "" {
					m.Depends = append(m.Depends, normalise(d))
				}
			}
		case "vermagic":
			m.Vermagic = value
		}
	}
	if m.Name == "" {
		return Module{}, fmt.Errorf("modinfo: no name= entry")
	}
	return m, nil
}

func decompress(b []byte) ([]byte, error) {
	var r io.Reader
	var err error
	switch {
	case bytes.HasPrefix(b, []byte("\x7fELF")):
		return b, nil
	case bytes.HasPrefix(b, []byte("\xfd7zXZ\x00")):
		r, err = xz.NewReader(bytes.NewReader(b))
	case bytes.HasPrefix(b, []byte("\x28\xb5\x2f\xfd")):
		var d *zstd.Decoder
		d, err = zstd.NewReader(bytes.NewReader(b), zstd.WithDecoderConcurrency(1))
		if err == nil {
			defer d.Close()
			r = d
		}
	case bytes.HasPrefix(b, []byte("\x1f\x8b")):
		r, err = gzip.NewReader(bytes.NewReader(b))
	default:
		return nil, fmt.Errorf("modinfo: neither ELF nor xz, zstd or gzip")
	}
	if err != nil {
		return nil, fmt.Errorf("modinfo: decompress: %w", err)
	}
	out, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("modinfo: decompress: %w", err)
	}
	return out, nil
}

// normalise spells a module name the way the kernel does: "nf-tables" and
// "nf_tables" are the same module.
func normalise(name string) string { return strings.ReplaceAll(name, "-", "_") }

// Index reads every module under lib/modules/<kernelRelease>/ in t, keyed
// by module name. Two files with the same module name, or a module built for
// another kernel (its vermagic names a different release), are errors: the
// kernel would refuse the latter at boot, far from the cause.
func Index(t *rootfs.Tree, kernelRelease string) (map[string]Module, error) {
	root := path.Join("lib/modules", kernelRelease) + "/"
	index := map[string]Module{}
	err := t.Walk(func(e *rootfs.Entry) error {
		if e.Kind != rootfs.Regular || !strings.HasPrefix(e.Path, root) || !isModuleFile(e.Path) {
			return nil
		}
		m, err := ParseModinfo(e.Data)
		if err != nil {
			return fmt.Errorf("%s: %w", e.Path, err)
		}
		if release, _, _ := strings.Cut(m.Vermagic, " "); release != kernelRelease {
			return fmt.Errorf("%s: built for kernel %q, not %q", e.Path, release, kernelRelease)
		}
		if other, dup := index[m.Name]; dup {
			return fmt.Errorf("module %s is both %s and %s", m.Name, other.Path, e.Path)
		}
		m.Path = e.Path
		index[m.Name] = m
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("index modules of %s: %w", kernelRelease, err)
	}
	if len(index) == 0 {
		return nil, fmt.Errorf("index modules: no modules under %s", root)
	}
	return index, nil
}

func isModuleFile(p string) bool {
	for _, s := range moduleSuffixes {
		if strings.HasSuffix(p, s) {
			return true
		}
	}
	return false
}

// LoadOrder returns wanted and everything they depend on, each module after
// its dependencies. The order follows wanted and each module's depends= list,
// so the same inputs always give the same order.
func LoadOrder(index map[string]Module, wanted []string) ([]Module, error) {
	const (
		visiting = 1
		done     = 2
	)
	state := map[string]int{}
	var order []Module
	var stack []string
	var visit func(name, neededBy string) error
	visit = func(name, neededBy string) error {
		switch state[name] {
		case done:
			return nil
		case visiting:
			i := len(stack) - 1
			for stack[i] != name {
				i--
			}
			return fmt.Errorf("module dependency cycle: %s -> %s", strings.Join(stack[i:], " -> "), name)
		}
		m, ok := index[name]
		if !ok {
			if neededBy == "" {
				return fmt.Errorf("module %s not found", name)
			}
			return fmt.Errorf("module %s (needed by %s) not found", name, neededBy)
		}
		state[name] = visiting
		stack = append(stack, name)
		for _, d := range m.Depends {
			if err := visit(d, name); err != nil {
				return err
			}
		}
		stack = stack[:len(stack)-1]
		state[name] = done
		order = append(order, m)
		return nil
	}
	for _, w := range wanted {
		if err := visit(normalise(w), ""); err != nil {
			return nil, err
		}
	}
	return order, nil
}
