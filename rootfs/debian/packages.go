package debian

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Package is one stanza of a Packages index, with the fields this
// package needs; every other field is ignored.
type Package struct {
	Name         string
	Version      string
	Architecture string
	Depends      [][]Relation
	PreDepends   [][]Relation
	// Provides lists the virtual names this package provides; each has
	// Op "" or "=" (a versioned provide).
	Provides  []Relation
	Filename  string
	Size      int64
	SHA256    string
	MultiArch string
	Essential bool
}

// ParsePackages reads a Packages index: deb822 stanzas separated by blank
// lines, "Field: value" lines, continuation lines starting with a space or
// tab. Field names are case-insensitive. Package, Version and Architecture
// are required in every stanza; a repeated field is an error, as in dpkg.
func ParsePackages(r io.Reader) ([]Package, error) {
	sc := bufio.NewScanner(r)
	// Some Provides and Description lines exceed bufio's 64 KiB default.
	sc.Buffer(make([]byte, 0, 1<<20), 64<<20)
	var (
		pkgs   []Package
		fields = map[string]string{}
		last   string
		start  int
		lineNo int
	)
	flush := func() error {
		if len(fields) == 0 {
			return nil
		}
		p, err := stanzaPackage(fields)
		if err != nil {
			return fmt.Errorf("packages: stanza at line %d: %w", start, err)
		}
		pkgs = append(pkgs, p)
		clear(fields)
		last = ""
		return nil
	}
	for sc.Scan() {
		lineNo++
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			if err := flush(); err != nil {
				return nil, err
			}
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			if last == "" {
				return nil, fmt.Errorf("packages: line %d: continuation line before any field", lineNo)
			}
			if _, keep := wanted[last]; keep {
				fields[last] += "\n" + strings.TrimSpace(line)
			}
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok || k == "" || strings.ContainsAny(k, " \t") {
			return nil, fmt.Errorf("packages: line %d: %q is not a \"Field: value\" line", lineNo, line)
		}
		if len(fields) == 0 {
			start = lineNo
		}
		k = strings.ToLower(k)
		if _, dup := fields[k]; dup {
			return nil, fmt.Errorf("packages: line %d: duplicate field %q", lineNo, k)
		}
		last = k
		// Unwanted fields are recorded empty so duplicates are still caught
		// without keeping long descriptions around.
		if _, keep := wanted[k]; keep {
			fields[k] = strings.TrimSpace(v)
		} else {
			fields[k] = ""
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("packages: line %d: %w", lineNo+1, err)
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return pkgs, nil
}

// wanted are the (lower-cased) fields whose values stanzaPackage reads.
var wanted = map[string]struct{}{
	"package": {}, "version": {}, "architecture": {}, "depends": {},
	"pre-depends": {}, "provides": {}, "filename": {}, "size": {},
	"sha256": {}, "multi-arch": {}, "essential": {},
}

func stanzaPackage(f map[string]string) (Package, error) {
	p := Package{
		Name:         f["package"],
		Version:      f["version"],
		Architecture: f["architecture"],
		Filename:     f["filename"],
		SHA256:       f["sha256"],
		MultiArch:    f["multi-arch"],
	}
	if p.Name == "" {
		return p, fmt.Errorf("no Package field")
	}
	if !validName(p.Name) {
		return p, fmt.Errorf("invalid package name %q", p.Name)
	}
	if p.Architecture == "" {
		return p, fmt.Errorf("%s: no Architecture field", p.Name)
	}
	if err := CheckVersion(p.Version); err != nil {
		return p, fmt.Errorf("%s: %w", p.Name, err)
	}
	if s := f["size"]; s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			return p, fmt.Errorf("%s: Size %q is not a byte count", p.Name, s)
		}
		p.Size = n
	}
	if p.SHA256 != "" && !isHex64(p.SHA256) {
		return p, fmt.Errorf("%s: SHA256 %q is not 64 hex digits", p.Name, p.SHA256)
	}
	switch e := f["essential"]; e {
	case "", "no":
	case "yes":
		p.Essential = true
	default:
		return p, fmt.Errorf("%s: Essential %q is neither yes nor no", p.Name, e)
	}
	var err error
	if p.Depends, err = ParseRelations(f["depends"]); err != nil {
		return p, fmt.Errorf("%s: Depends: %w", p.Name, err)
	}
	if p.PreDepends, err = ParseRelations(f["pre-depends"]); err != nil {
		return p, fmt.Errorf("%s: Pre-Depends: %w", p.Name, err)
	}
	provides, err := ParseRelations(f["provides"])
	if err != nil {
		return p, fmt.Errorf("%s: Provides: %w", p.Name, err)
	}
	for _, g := range provides {
		if len(g) != 1 || (g[0].Op != "" && g[0].Op != "=") || len(g[0].Arches) > 0 {
			return p, fmt.Errorf("%s: Provides: %q must be a plain name or name (= version)", p.Name, g[0])
		}
		p.Provides = append(p.Provides, g[0])
	}
	return p, nil
}

func isHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range []byte(s) {
		if !isDigit(c) && !(c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
