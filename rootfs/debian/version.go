// Package debian reads Debian package indexes (the "Packages" files apt
// downloads) and computes the dependency closure of a set of packages.
// Parsing and resolving are pure Go. The indexes come from this host's apt
// (HostIndex) or from a mirror directory or URL (Mirror), whose Release
// signature is checked with gpgv; package files are fetched from a mirror
// against their sha256.
package debian

import (
	"fmt"
	"strconv"
	"strings"
)

// version is a Debian version split per Policy §5.6.12:
// [epoch:]upstream_version[-debian_revision].
type version struct {
	epoch    int
	upstream string
	revision string
}

// splitVersion splits v without validating the character set; an absent
// revision is "" (which dpkg compares equal to "0").
func splitVersion(v string) (version, error) {
	var out version
	if e, rest, ok := strings.Cut(v, ":"); ok {
		n, err := strconv.Atoi(e)
		if err != nil || n < 0 || e == "" || strings.TrimLeft(e, "0123456789") != "" {
			return version{}, fmt.Errorf("version %q: epoch %q is not a number", v, e)
		}
		out.epoch = n
		v = rest
	}
	out.upstream = v
	if i := strings.LastIndexByte(v, '-'); i >= 0 {
		out.upstream, out.revision = v[:i], v[i+1:]
	}
	return out, nil
}

// CheckVersion reports whether v is a well-formed Debian version: a
// numeric epoch, a non-empty upstream part starting with a digit, and only
// the characters Policy allows in each part.
func CheckVersion(v string) error {
	p, err := splitVersion(v)
	if err != nil {
		return err
	}
	if p.upstream == "" || !isDigit(p.upstream[0]) {
		return fmt.Errorf("version %q: upstream part must start with a digit", v)
	}
	if strings.Contains(v, "-") && p.revision == "" {
		return fmt.Errorf("version %q: empty revision after '-'", v)
	}
	for _, c := range []byte(p.upstream) {
		if !isAlnum(c) && !strings.ContainsRune(".+~-", rune(c)) {
			return fmt.Errorf("version %q: character %q not allowed in upstream version", v, c)
		}
	}
	for _, c := range []byte(p.revision) {
		if !isAlnum(c) && !strings.ContainsRune(".+~", rune(c)) {
			return fmt.Errorf("version %q: character %q not allowed in revision", v, c)
		}
	}
	return nil
}

// CompareVersions compares two Debian versions the way dpkg does and
// returns -1, 0 or +1. Both should pass CheckVersion; an unparsable epoch
// counts as 0 so that the comparison stays total.
func CompareVersions(a, b string) int {
	va, _ := splitVersion(a)
	vb, _ := splitVersion(b)
	switch {
	case va.epoch < vb.epoch:
		return -1
	case va.epoch > vb.epoch:
		return 1
	}
	if c := verrevcmp(va.upstream, vb.upstream); c != 0 {
		return sign(c)
	}
	return sign(verrevcmp(va.revision, vb.revision))
}

// verrevcmp is dpkg's comparison of one version part: alternating runs of
// non-digits (compared character by character with order) and digits
// (compared numerically, leading zeros ignored).
func verrevcmp(a, b string) int {
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		for (i < len(a) && !isDigit(a[i])) || (j < len(b) && !isDigit(b[j])) {
			ac, bc := order(a, i), order(b, j)
			if ac != bc {
				return ac - bc
			}
			i++
			j++
		}
		for i < len(a) && a[i] == '0' {
			i++
		}
		for j < len(b) && b[j] == '0' {
			j++
		}
		firstDiff := 0
		for i < len(a) && j < len(b) && isDigit(a[i]) && isDigit(b[j]) {
			if firstDiff == 0 {
				firstDiff = int(a[i]) - int(b[j])
			}
			i++
			j++
		}
		if i < len(a) && isDigit(a[i]) {
			return 1
		}
		if j < len(b) && isDigit(b[j]) {
			return -1
		}
		if firstDiff != 0 {
			return firstDiff
		}
	}
	return 0
}

// order ranks the character at s[i] in a non-digit run: '~' sorts before
// the end of the string, the end (and a digit) before letters, letters
// before every other character.
func order(s string, i int) int {
	if i >= len(s) {
		return 0
	}
	c := s[i]
	switch {
	case isDigit(c):
		return 0
	case isAlpha(c):
		return int(c)
	case c == '~':
		return -1
	default:
		return int(c) + 256
	}
}

func sign(n int) int {
	switch {
	case n < 0:
		return -1
	case n > 0:
		return 1
	}
	return 0
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isAlpha(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isAlnum(c byte) bool { return isDigit(c) || isAlpha(c) }
