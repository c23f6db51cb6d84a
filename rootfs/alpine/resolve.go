package alpine

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Resolve returns the dependency closure of roots among the packages of
// index built for arch or "noarch", sorted by name, one version per name.
// A root is a dependency like any other: "busybox", "musl>=1.2",
// "cmd:sh".
//
// Each dependency (D:) is first checked against the closure so far, then
// satisfied by the highest version of the package of that name that meets
// the constraint, else by a package that provides the name (p:): highest
// provider priority (k:) first, then by name. An unversioned provide
// ("cmd:sh") satisfies only unversioned dependencies, as in apk. Cycles
// are fine: a package enters the closure once.
//
// Conflicts ("!name") take no part in choosing, but a closure in which a
// package conflicts with another is refused. install_if (i:) is not
// followed: apk would add such packages automatically; a caller that wants
// them names them as roots, so the closure stays what was asked for.
//
// Errors: a root that nothing named or provided for arch; a dependency no
// package satisfies (naming who needs it and what versions exist); a
// dependency that needs another version of a package already chosen.
func Resolve(index []Package, arch string, roots []string) ([]Package, error) {
	r := newResolver(index, arch)
	var queue []*Package
	roots = slices.Clone(roots)
	slices.Sort(roots)
	for _, root := range slices.Compact(roots) {
		d, err := parseDep(root)
		if err != nil || d.conflict {
			return nil, fmt.Errorf("resolve: root %q is not a package name or \"name[op version]\"", root)
		}
		if len(r.byName[d.name]) == 0 && len(r.providers[d.name]) == 0 {
			return nil, fmt.Errorf("resolve: root %q: no package for %s is named so or provides it", root, arch)
		}
		p, err := r.choose("root", d)
		if err != nil {
			return nil, err
		}
		if p != nil {
			queue = append(queue, p)
		}
	}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, s := range p.Depends {
			d, err := parseDep(s)
			if err != nil {
				return nil, fmt.Errorf("resolve: %s: %w", p, err)
			}
			if d.conflict {
				continue
			}
			dep, err := r.choose(p.String(), d)
			if err != nil {
				return nil, err
			}
			if dep != nil {
				queue = append(queue, dep)
			}
		}
	}
	out := make([]Package, 0, len(r.chosen))
	for _, p := range r.chosen {
		out = append(out, *p)
	}
	slices.SortFunc(out, func(a, b Package) int { return cmp.Compare(a.Name, b.Name) })
	if err := r.checkConflicts(out); err != nil {
		return nil, err
	}
	return out, nil
}

type provider struct {
	pkg     *Package
	version string // "" for an unversioned provide
}

type resolver struct {
	arch      string
	byName    map[string][]*Package // highest version first
	providers map[string][]provider // in order of preference
	chosen    map[string]*Package   // the closure so far
	provided  map[string][]provider // provides of chosen packages
}

func newResolver(index []Package, arch string) *resolver {
	r := &resolver{
		arch:      arch,
		byName:    map[string][]*Package{},
		providers: map[string][]provider{},
		chosen:    map[string]*Package{},
		provided:  map[string][]provider{},
	}
	for i := range index {
		p := &index[i]
		if p.Arch != arch && p.Arch != "noarch" {
			continue
		}
		r.byName[p.Name] = append(r.byName[p.Name], p)
		for _, s := range p.Provides {
			name, ver, err := parseProvide(s)
			if err != nil {
				continue // ParseIndex refuses these; a hand-made index may not
			}
			r.providers[name] = append(r.providers[name], provider{p, ver})
		}
	}
	// Index order must not matter; the checksum breaks the last ties.
	for _, ps := range r.byName {
		slices.SortFunc(ps, func(a, b *Package) int {
			return cmp.Or(CompareVersions(b.Version, a.Version), cmp.Compare(a.Checksum, b.Checksum))
		})
	}
	for _, ps := range r.providers {
		slices.SortFunc(ps, func(a, b provider) int {
			return cmp.Or(
				cmp.Compare(b.pkg.ProviderPriority, a.pkg.ProviderPriority),
				cmp.Compare(a.pkg.Name, b.pkg.Name),
				CompareVersions(b.version, a.version),
				CompareVersions(b.pkg.Version, a.pkg.Version),
				cmp.Compare(a.pkg.Checksum, b.pkg.Checksum),
			)
		})
	}
	return r
}

// choose satisfies d for the package described by need. It returns the
// package newly added to the closure, or nil when d was already satisfied.
func (r *resolver) choose(need string, d dep) (*Package, error) {
	if r.satisfiedByChosen(d) {
		return nil, nil
	}
	p := r.candidate(d)
	if p == nil {
		return nil, fmt.Errorf("resolve: %s needs %s, which no package for %s satisfies: %s", need, d, r.arch, r.describe(d.name))
	}
	if old, ok := r.chosen[p.Name]; ok {
		return nil, fmt.Errorf("resolve: %s needs %s, which picks %s, but %s is already in the closure", need, d, p, old)
	}
	r.chosen[p.Name] = p
	for _, s := range p.Provides {
		if name, ver, err := parseProvide(s); err == nil {
			r.provided[name] = append(r.provided[name], provider{p, ver})
		}
	}
	return p, nil
}

func (r *resolver) satisfiedByChosen(d dep) bool {
	if p, ok := r.chosen[d.name]; ok && d.matches(p.Version) {
		return true
	}
	return slices.ContainsFunc(r.provided[d.name], func(pr provider) bool { return provideOK(d, pr) })
}

// candidate is the package d would add: the highest satisfying package of
// that name, else the preferred satisfying provider.
func (r *resolver) candidate(d dep) *Package {
	for _, p := range r.byName[d.name] {
		if d.matches(p.Version) {
			return p
		}
	}
	for _, pr := range r.providers[d.name] {
		if provideOK(d, pr) {
			return pr.pkg
		}
	}
	return nil
}

func provideOK(d dep, pr provider) bool {
	return d.op == "" || pr.version != "" && d.matches(pr.version)
}

// checkConflicts refuses a closure in which a package's "!name"
// dependency matches another package of the closure.
func (r *resolver) checkConflicts(closure []Package) error {
	for _, p := range closure {
		for _, s := range p.Depends {
			d, err := parseDep(s)
			if err != nil || !d.conflict {
				continue
			}
			if q, ok := r.chosen[d.name]; ok && q.Name != p.Name && d.matches(q.Version) {
				return fmt.Errorf("resolve: %s conflicts with %s (%s), and both are in the closure", p, q, d)
			}
			for _, pr := range r.provided[d.name] {
				if pr.pkg.Name != p.Name && provideOK(d, pr) {
					return fmt.Errorf("resolve: %s conflicts with %s, which %s provides, and both are in the closure", p, d, pr.pkg)
				}
			}
		}
	}
	return nil
}

// describe lists what exists for name, for error messages.
func (r *resolver) describe(name string) string {
	var have []string
	for _, p := range r.byName[name] {
		have = append(have, p.Version+" ("+p.Arch+")")
	}
	for _, pr := range r.providers[name] {
		h := "provided by " + pr.pkg.String()
		if pr.version != "" {
			h += " as version " + pr.version
		} else {
			h += " without a version"
		}
		have = append(have, h)
	}
	if len(have) == 0 {
		return "no package of that name or providing it"
	}
	return name + ": " + strings.Join(slices.Compact(have), ", ")
}
