package builder

import (
	"bytes"
	"debug/elf"
	"fmt"
	"path"
	"slices"
	"strings"

	"yakimg/rootfs"
)

// librarySearchPath is where the glibc loader of Debian amd64 looks for a
// library when there is no ld.so.cache (the image has none): its compiled-in
// system directories, as `ld.so --help` lists them.
var librarySearchPath = []string{"lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu", "lib", "usr/lib"}

// programDirs hold the programs whose libraries must all be present.
var programDirs = []string{"bin", "sbin", "usr/bin", "usr/sbin", "usr/local/bin"}

// checkSharedLibraries proves that every dynamically linked program in the
// image can be loaded: its interpreter exists, and so does every library it
// needs, transitively, found the way the loader finds them. A missing
// library would otherwise surface only in the guest, as "error while
// loading shared libraries". It returns how many programs are dynamic.
func checkSharedLibraries(t *rootfs.Tree) (int, error) {
	var problems []string
	checked := map[string]bool{} // library paths already followed
	dynamic := 0
	var follow func(file, needer string)
	follow = func(file, needer string) {
		e := resolveLink(t, file)
		if e == nil {
			return
		}
		f, err := elf.NewFile(bytes.NewReader(e.Data))
		if err != nil {
			return // not ELF: a script
		}
		defer f.Close()
		if interp := interpreter(f); interp != "" && resolveLink(t, interp) == nil {
			problems = append(problems, fmt.Sprintf("%s: interpreter %s is missing", needer, interp))
		}
		libs, err := f.ImportedLibraries()
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", needer, err))
			return
		}
		for _, lib := range libs {
			found := ""
			for _, dir := range librarySearchPath {
				if resolveLink(t, path.Join(dir, lib)) != nil {
					found = path.Join(dir, lib)
					break
				}
			}
			if found == "" {
				problems = append(problems, fmt.Sprintf("%s needs %s, which is in none of /%s", needer, lib, strings.Join(librarySearchPath, ", /")))
				continue
			}
			if !checked[found] {
				checked[found] = true
				follow(found, "/"+found)
			}
		}
	}
	for _, p := range t.Paths() {
		if !slices.Contains(programDirs, path.Dir(p)) {
			continue
		}
		e, _ := t.Get(p)
		if e.Kind != rootfs.Regular || !bytes.HasPrefix(e.Data, []byte(elf.ELFMAG)) {
			continue
		}
		if f, err := elf.NewFile(bytes.NewReader(e.Data)); err == nil {
			if interpreter(f) != "" {
				dynamic++
			}
			f.Close()
		}
		follow(p, "/"+p)
	}
	slices.Sort(problems)
	problems = slices.Compact(problems)
	if len(problems) > 0 {
		return dynamic, fmt.Errorf("shared libraries missing from the image (add the packages that ship them to %s):\n  %s", ProjectFile, strings.Join(problems, "\n  "))
	}
	return dynamic, nil
}

// interpreter returns the program interpreter (PT_INTERP) of f, "" for a
// static executable or a library.
func interpreter(f *elf.File) string {
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			b := make([]byte, p.Filesz)
			if _, err := p.ReadAt(b, 0); err != nil {
				return ""
			}
			return strings.TrimRight(string(b), "\x00")
		}
	}
	return ""
}

// resolveLink follows symbolic links inside the tree (at most 40, as the
// kernel does) and returns the regular file p ends at, or nil.
func resolveLink(t *rootfs.Tree, p string) *rootfs.Entry {
	p = strings.TrimPrefix(p, "/")
	for range 40 {
		// Resolve links in the directory part too: /lib64 may be a link.
		p = resolveDirs(t, p)
		e, ok := t.Get(p)
		if !ok {
			return nil
		}
		switch e.Kind {
		case rootfs.Regular:
			return e
		case rootfs.Symlink:
			if strings.HasPrefix(e.Target, "/") {
				p = strings.TrimPrefix(path.Clean(e.Target), "/")
			} else {
				p = path.Join(path.Dir(p), e.Target)
			}
		default:
			return nil
		}
	}
	return nil
}

// resolveDirs replaces symlinked directories in p's parent path by their
// targets, one level at a time.
func resolveDirs(t *rootfs.Tree, p string) string {
	parts := strings.Split(p, "/")
	cur := ""
	for _, part := range parts[:len(parts)-1] {
		next := path.Join(cur, part)
		for range 40 {
			e, ok := t.Get(next)
			if !ok || e.Kind != rootfs.Symlink {
				break
			}
			if strings.HasPrefix(e.Target, "/") {
				next = strings.TrimPrefix(path.Clean(e.Target), "/")
			} else {
				next = path.Join(path.Dir(next), e.Target)
			}
		}
		cur = next
	}
	return path.Join(cur, parts[len(parts)-1])
}
