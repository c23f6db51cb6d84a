package debian

import (
	"fmt"
	"slices"
	"strings"
)

// Relation is one alternative of a Depends-style field, e.g.
// "libc6:any (>= 2.34) [amd64 arm64]".
type Relation struct {
	Name string
	// ArchQual is the qualifier after the colon ("any", "native" or an
	// architecture name such as "amd64"), or "".
	ArchQual string
	// Op is one of "<<", "<=", "=", ">=", ">>", or "" when unversioned.
	Op      string
	Version string
	// Arches is the bracketed architecture restriction; entries may be
	// negated with "!". Empty means every architecture.
	Arches []string
}

func (r Relation) String() string {
	s := r.Name
	if r.ArchQual != "" {
		s += ":" + r.ArchQual
	}
	if r.Op != "" {
		s += " (" + r.Op + " " + r.Version + ")"
	}
	if len(r.Arches) > 0 {
		s += " [" + strings.Join(r.Arches, " ") + "]"
	}
	return s
}

// AppliesTo reports whether the bracketed restriction keeps r for arch.
// Only plain architecture names and "any" are understood, not wildcards
// such as "linux-any": binary package indexes carry no restrictions at all,
// so the full wildcard table is not worth having here.
func (r Relation) AppliesTo(arch string) bool {
	if len(r.Arches) == 0 {
		return true
	}
	negated := strings.HasPrefix(r.Arches[0], "!")
	for _, a := range r.Arches {
		if strings.TrimPrefix(a, "!") == arch || a == "any" {
			return !negated
		}
	}
	return negated
}

// SatisfiedBy reports whether version v meets r's version constraint.
func (r Relation) SatisfiedBy(v string) bool {
	if r.Op == "" {
		return true
	}
	c := CompareVersions(v, r.Version)
	switch r.Op {
	case "<<":
		return c < 0
	case "<=":
		return c <= 0
	case "=":
		return c == 0
	case ">=":
		return c >= 0
	case ">>":
		return c > 0
	}
	return false
}

var operators = []string{"<<", "<=", "=", ">=", ">>"}

// ParseRelations parses a relation field: comma-separated groups of
// "|"-separated alternatives. An empty field gives no groups.
//
// Refused, because binary package indexes never contain them and
// silently misreading them would be worse: build profiles ("<!nocheck>"),
// and the deprecated "<" and ">" operators.
func ParseRelations(s string) ([][]Relation, error) {
	var groups [][]Relation
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	for _, g := range strings.Split(s, ",") {
		var alts []Relation
		for _, a := range strings.Split(g, "|") {
			r, err := parseRelation(a)
			if err != nil {
				return nil, fmt.Errorf("relation %q: %w", strings.TrimSpace(a), err)
			}
			alts = append(alts, r)
		}
		groups = append(groups, alts)
	}
	return groups, nil
}

func parseRelation(s string) (Relation, error) {
	var r Relation
	s = strings.TrimSpace(s)
	outside := s
	if o := strings.IndexByte(s, '('); o >= 0 {
		// An unterminated "(" is reported below, not as a profile.
		outside = s[:o]
		if c := strings.IndexByte(s, ')'); c > o {
			outside += s[c+1:]
		}
	}
	if strings.ContainsAny(outside, "<>") {
		return r, fmt.Errorf("build profiles are not supported")
	}
	if i := strings.IndexByte(s, '['); i >= 0 {
		inner, ok := strings.CutSuffix(s[i+1:], "]")
		if !ok {
			return r, fmt.Errorf("unterminated or misplaced '['")
		}
		r.Arches = strings.Fields(inner)
		if len(r.Arches) == 0 {
			return r, fmt.Errorf("empty architecture list")
		}
		neg := strings.HasPrefix(r.Arches[0], "!")
		for _, a := range r.Arches {
			if strings.HasPrefix(a, "!") != neg {
				return r, fmt.Errorf("architecture list mixes negated and plain entries")
			}
		}
		s = strings.TrimSpace(s[:i])
	}
	if i := strings.IndexByte(s, '('); i >= 0 {
		inner, ok := strings.CutSuffix(s[i+1:], ")")
		if !ok {
			return r, fmt.Errorf("unterminated or misplaced '('")
		}
		inner = strings.TrimSpace(inner)
		for _, op := range []string{"<<", "<=", ">=", ">>", "="} {
			if v, ok := strings.CutPrefix(inner, op); ok {
				r.Op, r.Version = op, strings.TrimSpace(v)
				break
			}
		}
		if !slices.Contains(operators, r.Op) {
			return r, fmt.Errorf("unknown version operator in %q", inner)
		}
		if err := CheckVersion(r.Version); err != nil {
			return r, err
		}
		s = strings.TrimSpace(s[:i])
	}
	name, qual, _ := strings.Cut(s, ":")
	if strings.Contains(s, ":") && !validArch(qual) {
		return r, fmt.Errorf("invalid architecture qualifier %q", qual)
	}
	if !validName(name) {
		return r, fmt.Errorf("invalid package name %q", name)
	}
	r.Name, r.ArchQual = name, qual
	return r, nil
}

// validName checks Policy §5.6.1: lower-case letters, digits, "+-."; at
// least two characters, starting with an alphanumeric.
func validName(n string) bool {
	if len(n) < 2 || !isAlnum(n[0]) {
		return false
	}
	for _, c := range []byte(n) {
		if !(isDigit(c) || c >= 'a' && c <= 'z' || c == '+' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// validArch accepts architecture names as dpkg spells them ("amd64",
// "x32", "kfreebsd-amd64") plus the qualifiers "any" and "native".
func validArch(a string) bool {
	if a == "" || a[0] == '-' {
		return false
	}
	for _, c := range []byte(a) {
		if !(isDigit(c) || c >= 'a' && c <= 'z' || c == '-') {
			return false
		}
	}
	return true
}
