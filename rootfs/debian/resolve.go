package debian

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Resolve returns the dependency closure of roots (following Depends and
// Pre-Depends) among the packages of index built for arch or "all",
// sorted by name, one version per name.
//
// For each relation group it first checks whether a package already in the
// closure satisfies one alternative (so "default-mta | mail-transport-agent"
// does not pull in a second MTA); otherwise it takes the first alternative
// that can be satisfied: the highest version of a real package of that name
// meeting the constraint, else the first provider by name (versioned
// Provides count for versioned relations, unversioned ones only for
// unversioned relations). ":any" needs a "Multi-Arch: allowed" package;
// ":native" is plain for a single-architecture closure, and ":arch" needs a
// package of that architecture (or "all").
//
// Dependency cycles are normal in Debian (libc6 and libgcc-s1, for one) and
// are not errors: a package enters the closure once. Recommends, Conflicts,
// Breaks and the implicit Essential set are not considered; a caller that
// wants Essential packages names them as roots.
//
// Errors: a root that no package of arch names or provides; an unsatisfiable
// relation (naming the package that needs it and the versions that exist);
// a relation that needs a different version of a package already chosen.
func Resolve(index []Package, arch string, roots []string) ([]Package, error) {
	return ResolveExcluding(index, arch, roots, nil)
}

// ResolveExcluding is Resolve with some packages left out on purpose: a
// relation group that names an excluded package among its alternatives
// counts as satisfied, so neither that package nor what only it needs
// enters the closure (like dpkg --force-depends for those names). An image
// uses it to drop tooling it never runs, such as criu's Python helper
// crit, while every other dependency is still resolved from the index.
// Excluding a root is an error.
func ResolveExcluding(index []Package, arch string, roots, exclude []string) ([]Package, error) {
	r := newResolver(index, arch)
	for _, x := range exclude {
		if slices.Contains(roots, x) {
			return nil, fmt.Errorf("resolve: %q is both a root and excluded", x)
		}
		r.excluded[x] = true
	}
	var queue []*Package
	roots = slices.Clone(roots)
	slices.Sort(roots)
	for _, name := range slices.Compact(roots) {
		if len(r.byName[name]) == 0 && len(r.providers[name]) == 0 {
			return nil, fmt.Errorf("resolve: root %q: no package for %s is named or provides it", name, arch)
		}
		p, err := r.choose("root", []Relation{{Name: name}})
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
		need := p.Name + " " + p.Version
		for _, g := range slices.Concat(p.PreDepends, p.Depends) {
			dep, err := r.choose(need, g)
			if err != nil {
				return nil, err
			}
			if dep != nil {
				queue = append(queue, dep)
			}
		}
	}
	if err := r.checkPreDependsCycles(); err != nil {
		return nil, err
	}
	out := make([]Package, 0, len(r.chosen))
	for _, p := range r.chosen {
		out = append(out, *p)
	}
	slices.SortFunc(out, func(a, b Package) int { return cmp.Compare(a.Name, b.Name) })
	return out, nil
}

type provider struct {
	pkg     *Package
	version string // "" for an unversioned provide
}

type resolver struct {
	arch      string
	byName    map[string][]*Package // highest version first
	providers map[string][]provider // by provider name, then version
	chosen    map[string]*Package   // the closure so far
	provided  map[string][]provider // Provides of chosen packages
	excluded  map[string]bool       // names treated as present
}

func newResolver(index []Package, arch string) *resolver {
	r := &resolver{
		arch:      arch,
		byName:    map[string][]*Package{},
		providers: map[string][]provider{},
		chosen:    map[string]*Package{},
		provided:  map[string][]provider{},
		excluded:  map[string]bool{},
	}
	for i := range index {
		p := &index[i]
		if p.Architecture != arch && p.Architecture != "all" {
			continue
		}
		r.byName[p.Name] = append(r.byName[p.Name], p)
		for _, pr := range p.Provides {
			r.providers[pr.Name] = append(r.providers[pr.Name], provider{p, pr.Version})
		}
	}
	// Index order must not matter: the same versions appear in several
	// suites (bookworm and bookworm-security), so ties break on Filename.
	for _, ps := range r.byName {
		slices.SortStableFunc(ps, func(a, b *Package) int {
			if c := CompareVersions(b.Version, a.Version); c != 0 {
				return c
			}
			return cmp.Compare(a.Filename, b.Filename)
		})
	}
	for _, ps := range r.providers {
		slices.SortStableFunc(ps, func(a, b provider) int {
			if c := cmp.Compare(a.pkg.Name, b.pkg.Name); c != 0 {
				return c
			}
			if c := CompareVersions(b.pkg.Version, a.pkg.Version); c != 0 {
				return c
			}
			return cmp.Compare(a.pkg.Filename, b.pkg.Filename)
		})
	}
	return r
}

// choose satisfies one relation group for the package described by need.
// It returns the package newly added to the closure, or nil when the group
// was already satisfied or does not apply to this architecture.
func (r *resolver) choose(need string, group []Relation) (*Package, error) {
	var alts []Relation
	for _, rel := range group {
		if rel.AppliesTo(r.arch) {
			alts = append(alts, rel)
		}
	}
	if len(alts) == 0 {
		return nil, nil
	}
	for _, rel := range alts {
		if r.excluded[rel.Name] || r.satisfiedByChosen(rel) {
			return nil, nil
		}
	}
	for _, rel := range alts {
		p := r.candidate(rel)
		if p == nil {
			continue
		}
		if old, ok := r.chosen[p.Name]; ok {
			return nil, fmt.Errorf("resolve: %s needs %s, which picks %s %s, but %s %s is already in the closure",
				need, rel, p.Name, p.Version, old.Name, old.Version)
		}
		r.chosen[p.Name] = p
		for _, pr := range p.Provides {
			r.provided[pr.Name] = append(r.provided[pr.Name], provider{p, pr.Version})
		}
		return p, nil
	}
	return nil, fmt.Errorf("resolve: %s needs %s, which cannot be satisfied for %s: %s",
		need, joinRelations(alts), r.arch, r.describe(alts))
}

func (r *resolver) satisfiedByChosen(rel Relation) bool {
	if p, ok := r.chosen[rel.Name]; ok && r.realOK(rel, p) {
		return true
	}
	for _, pr := range r.provided[rel.Name] {
		if r.provideOK(rel, pr) {
			return true
		}
	}
	return false
}

// candidate is the package rel would add: the highest satisfying real
// package, else the first satisfying provider.
func (r *resolver) candidate(rel Relation) *Package {
	for _, p := range r.byName[rel.Name] {
		if r.realOK(rel, p) {
			return p
		}
	}
	for _, pr := range r.providers[rel.Name] {
		if r.provideOK(rel, pr) {
			return pr.pkg
		}
	}
	return nil
}

func (r *resolver) realOK(rel Relation, p *Package) bool {
	return qualOK(rel, p) && rel.SatisfiedBy(p.Version)
}

func (r *resolver) provideOK(rel Relation, pr provider) bool {
	if !qualOK(rel, pr.pkg) {
		return false
	}
	if rel.Op == "" {
		return true
	}
	return pr.version != "" && rel.SatisfiedBy(pr.version)
}

// qualOK applies the architecture qualifier: only a "Multi-Arch: allowed"
// package satisfies "name:any"; "name:amd64" needs an amd64 or all package.
func qualOK(rel Relation, p *Package) bool {
	switch rel.ArchQual {
	case "", "native":
		return true
	case "any":
		return p.MultiArch == "allowed"
	}
	return p.Architecture == rel.ArchQual || p.Architecture == "all"
}

// describe lists what exists for each alternative, for error messages.
func (r *resolver) describe(alts []Relation) string {
	var parts []string
	for _, rel := range alts {
		var have []string
		for _, p := range r.byName[rel.Name] {
			have = append(have, p.Version+" ("+p.Architecture+", Multi-Arch: "+cmp.Or(p.MultiArch, "no")+")")
		}
		for _, pr := range r.providers[rel.Name] {
			h := "provided by " + pr.pkg.Name + " " + pr.pkg.Version
			if pr.version != "" {
				h += " as version " + pr.version
			}
			have = append(have, h)
		}
		if len(have) == 0 {
			have = []string{"no such package"}
		}
		parts = append(parts, rel.Name+": "+strings.Join(slices.Compact(have), ", "))
	}
	return strings.Join(parts, "; ")
}

func joinRelations(alts []Relation) string {
	s := make([]string, len(alts))
	for i, a := range alts {
		s[i] = a.String()
	}
	return strings.Join(s, " | ")
}

// Newest returns the highest version of the package called name built for
// arch or "all", without looking at its dependencies.
func Newest(index []Package, arch, name string) (Package, error) {
	ps := newResolver(index, arch).byName[name]
	if len(ps) == 0 {
		return Package{}, fmt.Errorf("resolve: no package %q for %s", name, arch)
	}
	return *ps[0], nil
}

// checkPreDependsCycles refuses a closure whose Pre-Depends form a cycle.
// A Depends cycle is ordinary (libc6 and libgcc-s1 depend on each other)
// because dpkg unpacks both before configuring either; a Pre-Depends needs
// the other package configured before this one is even unpacked, so a
// cycle of them can never be installed.
func (r *resolver) checkPreDependsCycles() error {
	names := slices.Sorted(maps.Keys(r.chosen))
	edges := map[string][]string{}
	for _, n := range names {
		for _, g := range r.chosen[n].PreDepends {
			for _, rel := range g {
				if by := r.chosenFor(rel); by != "" {
					edges[n] = append(edges[n], by)
					break
				}
			}
		}
	}
	const (
		unseen = iota
		onPath
		done
	)
	state := map[string]int{}
	var path []string
	var visit func(n string) error
	visit = func(n string) error {
		state[n] = onPath
		path = append(path, n)
		for _, m := range edges[n] {
			switch state[m] {
			case onPath:
				cycle := append(slices.Clone(path[slices.Index(path, m):]), m)
				return fmt.Errorf("resolve: circular Pre-Depends: %s; dpkg can install none of them", strings.Join(cycle, " → "))
			case unseen:
				if err := visit(m); err != nil {
					return err
				}
			}
		}
		path = path[:len(path)-1]
		state[n] = done
		return nil
	}
	for _, n := range names {
		if state[n] == unseen {
			if err := visit(n); err != nil {
				return err
			}
		}
	}
	return nil
}

// chosenFor names the package in the closure that satisfies rel, if any.
func (r *resolver) chosenFor(rel Relation) string {
	if p, ok := r.chosen[rel.Name]; ok && r.realOK(rel, p) {
		return p.Name
	}
	for _, pr := range r.provided[rel.Name] {
		if r.provideOK(rel, pr) {
			return pr.pkg.Name
		}
	}
	return ""
}
