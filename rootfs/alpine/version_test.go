package alpine

import (
	"slices"
	"strings"
	"testing"
)

// versionCases are (a, b, want): want is the sign of CompareVersions(a, b)
// under apk-tools' rules.
var versionCases = []struct {
	a, b string
	want int
}{
	{"1.0", "1.0", 0},
	{"1.0", "1.1", -1},
	{"1.2", "1.10", -1},
	{"1.10", "1.9", 1},
	{"1.2.1", "1.2", 1},
	{"2.0", "1.99.99", 1},
	// Pre-release suffixes sort before the release, post-release after.
	{"1.0_alpha", "1.0_beta", -1},
	{"1.0_beta", "1.0_pre", -1},
	{"1.0_pre", "1.0_rc", -1},
	{"1.0_rc1", "1.0", -1},
	{"1.0", "1.0_cvs", -1},
	{"1.0_cvs", "1.0_svn", -1},
	{"1.0_svn", "1.0_git", -1},
	{"1.0_git", "1.0_hg", -1},
	{"1.0_hg", "1.0_p", -1},
	{"1.0_rc", "1.0_rc1", -1},
	{"1.0_rc9", "1.0_rc10", -1},
	{"1.0_alpha_pre2", "1.0_alpha", -1},
	{"1.3_pre1-r1", "1.3.2", -1},
	{"1.0_rc3-r1", "1.0_rc3", 1},
	// Which kind of token follows decides when the values agree:
	// a number > a letter > a suffix > a hash > a revision > nothing.
	{"1.0", "1.0-r1", -1},
	{"1.0-r1", "1.0~abc", -1},
	{"1.0~abc", "1.0_p1", -1},
	{"1.0_p1", "1.0a", -1},
	{"1.0a", "1.0.1", -1},
	{"1.0-r9", "1.0-r10", -1},
	{"1.0_p1-r5", "1.0_p2", -1},
	{"1.7", "1.7b", -1},
	{"1.7b", "1.7c", -1},
	{"2.12r-r4", "2.12r-r5", -1},
	{"1.0~abc-r0", "1.0~abd-r0", -1},
	// A dotted number with a leading zero compares as a string; the first
	// number always numerically.
	{"1.02", "1.1", -1},
	{"1.01", "1.010", -1},
	{"1.2.07.8", "1.2.12.04", -1},
	{"2.10.1", "02.08.01b", 1},
	{"006", "1.06-r6", 1},
	{"013", "014-r1", -1},
	{"20060720", "3.0.20060720", 1},
	// Numbers of any length.
	{"1.0_pre20191002222144-r0", "1.0_pre20210530193627-r0", -1},
	{"99999999999999999999", "100000000000000000000", -1},
	// Malformed: the valid prefix still orders.
	{"1.0", "1.0bc", -1},
	{"23_foo", "4_beta", 1},
}

func TestCompareVersions(t *testing.T) {
	for _, c := range versionCases {
		if got := CompareVersions(c.a, c.b); got != c.want {
			t.Errorf("CompareVersions(%q, %q) = %d; want %d", c.a, c.b, got, c.want)
		}
		if got := CompareVersions(c.b, c.a); got != -c.want {
			t.Errorf("CompareVersions(%q, %q) = %d; want %d", c.b, c.a, got, -c.want)
		}
	}
}

// TestVersionSort sorts a shuffled list that spans every rule and checks
// the one order apk gives it.
func TestVersionSort(t *testing.T) {
	want := []string{
		"0.9", "1.0_alpha1", "1.0_beta2", "1.0_pre3", "1.0_rc1", "1.0_rc2",
		"1.0", "1.0-r1", "1.0-r2", "1.0~0a1b", "1.0_git20240101", "1.0_p1",
		"1.0_p1-r1", "1.0a", "1.0.1_rc1", "1.0.1", "1.1", "1.10", "2",
	}
	got := slices.Clone(want)
	slices.Reverse(got)
	got[0], got[7] = got[7], got[0]
	slices.SortFunc(got, CompareVersions)
	if !slices.Equal(got, want) {
		t.Errorf("sorted = %v\nwant     %v", got, want)
	}
}

func TestCheckVersion(t *testing.T) {
	for _, v := range []string{
		"1", "20240101", "1.36.1-r29", "2.4_rc1", "1.0_p3", "1.0a", "1.0a_p1-r2",
		"0.1.0_alpha_pre2", "6.4_git20240101~ab12cd-r0", "1.0~DEADbeef", "1.0-r0",
	} {
		if err := CheckVersion(v); err != nil {
			t.Errorf("CheckVersion(%q) = %v; want nil", v, err)
		}
	}
	for _, c := range []struct{ v, at string }{
		{"", `"" at offset 0`},
		{"a1", `"a1" at offset 0`},
		{"v1.0", `"v1.0" at offset 0`},
		{"1.", `"." at offset 1`},
		{"1..2", `"..2" at offset 1`},
		{"1.0-r", `"-r" at offset 3`},
		{"1.0-1", `"-1" at offset 3`},
		{"1.0_foo", `"_foo" at offset 3`},
		{"1.0bc", `"c" at offset 4`},
		{"1.0a1", `"1" at offset 4`},
		{"1.0_rc1.2", `".2" at offset 7`},
		{"1.0-r1_p1", `"_p1" at offset 6`},
		{"1.0-r1-r2", `"-r2" at offset 6`},
		{"1.0~", `"~" at offset 3`},
		{"1.0~xyz", `"~xyz" at offset 3`},
		{"1.0 ", `" " at offset 3`},
		{"1.0_RC1", `"_RC1" at offset 3`},
	} {
		err := CheckVersion(c.v)
		if err == nil || !strings.Contains(err.Error(), c.at) {
			t.Errorf("CheckVersion(%q) = %v; want an error naming %s", c.v, err, c.at)
		}
	}
}

func TestDepMatches(t *testing.T) {
	for _, c := range []struct {
		dep, version string
		want         bool
	}{
		{"foo", "0.1", true},
		{"foo>=1.2", "1.2", true},
		{"foo>=1.2", "1.1", false},
		{"foo>1.0", "1.0", false},
		{"foo>1.0", "1.0-r1", true},
		{"foo<2", "1.9", true},
		{"foo<2", "2", false},
		{"foo<2", "2_rc1", true},
		{"foo<=1.0", "1.0", true},
		{"foo=1.0-r1", "1.0-r1", true},
		{"foo=1.0", "1.0-r1", false},
		{"foo~1.2", "1.2.5", true},
		{"foo~1.2", "1.2-r3", true},
		{"foo~1.2", "1.3", false},
		{"foo~1.2", "1.20", false},
		{"foo>~1.2", "1.2.1", true},
		{"foo>~1.2", "1.1", false},
		{"foo<~1.2", "1.2.9", true},
		{"foo<~1.2", "1.3", false},
		{"!foo<2", "1.0", true},
	} {
		d, err := parseDep(c.dep)
		if err != nil {
			t.Fatalf("parseDep(%q): %v", c.dep, err)
		}
		if got := d.matches(c.version); got != c.want {
			t.Errorf("%q matches %q = %v; want %v", c.dep, c.version, got, c.want)
		}
		if d.String() != c.dep {
			t.Errorf("parseDep(%q).String() = %q", c.dep, d)
		}
	}
	for _, s := range []string{"", "!", "foo>=", "foo>>1", "foo=>1", "foo=1..2", ">=1", "foo=1 ", "!!foo"} {
		if d, err := parseDep(s); err == nil {
			t.Errorf("parseDep(%q) = %+v; want an error", s, d)
		}
	}
}
