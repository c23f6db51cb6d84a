package debian

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseRelations(t *testing.T) {
	got, err := ParseRelations("aa (>= 1.0) | bb, cc:any, dd [amd64], ee:native (<<2:3-1) [!i386 !arm64],\n ff (= 1), g+ (<= 1), h.1-2 (>> 1~rc)")
	if err != nil {
		t.Fatal(err)
	}
	want := [][]Relation{
		{{Name: "aa", Op: ">=", Version: "1.0"}, {Name: "bb"}},
		{{Name: "cc", ArchQual: "any"}},
		{{Name: "dd", Arches: []string{"amd64"}}},
		{{Name: "ee", ArchQual: "native", Op: "<<", Version: "2:3-1", Arches: []string{"!i386", "!arm64"}}},
		{{Name: "ff", Op: "=", Version: "1"}},
		{{Name: "g+", Op: "<=", Version: "1"}},
		{{Name: "h.1-2", Op: ">>", Version: "1~rc"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ParseRelations = %+v; want %+v", got, want)
	}
	if got, err := ParseRelations("  "); err != nil || got != nil {
		t.Errorf("ParseRelations(blank) = %v, %v; want nil, nil", got, err)
	}
}

func TestParseRelationsRefuses(t *testing.T) {
	for in, why := range map[string]string{
		"a <!nocheck>":          "build profiles",
		"a (>= 1) [amd64] <!x>": "build profiles",
		"a (< 1)":               "unknown version operator",
		"a (> 1)":               "unknown version operator",
		"a (>= 1":               "unterminated",
		"a [amd64":              "unterminated",
		"a []":                  "empty architecture list",
		"a [amd64 !i386]":       "mixes",
		"aa:AMD64":              "qualifier",
		"aa:":                   "qualifier",
		"A":                     "invalid package name",
		"aa, , bb":              "invalid package name",
		"a (>= x1)":             "must start with a digit",
	} {
		_, err := ParseRelations(in)
		if err == nil || !strings.Contains(err.Error(), why) {
			t.Errorf("ParseRelations(%q) = %v; want an error about %q", in, err, why)
		}
	}
}

func TestRelationAppliesTo(t *testing.T) {
	for _, c := range []struct {
		arches []string
		want   bool
	}{
		{nil, true},
		{[]string{"amd64"}, true},
		{[]string{"i386", "amd64"}, true},
		{[]string{"arm64"}, false},
		{[]string{"!amd64"}, false},
		{[]string{"!arm64", "!i386"}, true},
		{[]string{"any"}, true},
	} {
		if got := (Relation{Name: "x", Arches: c.arches}).AppliesTo("amd64"); got != c.want {
			t.Errorf("Relation{Arches: %q}.AppliesTo(amd64) = %v; want %v", c.arches, got, c.want)
		}
	}
}

func TestRelationSatisfiedBy(t *testing.T) {
	for _, c := range []struct {
		op   string
		v    string
		want [3]bool // for versions 1.0~rc1, 1.0, 1.0-1
	}{
		{"", "", [3]bool{true, true, true}},
		{"<<", "1.0", [3]bool{true, false, false}},
		{"<=", "1.0", [3]bool{true, true, false}},
		{"=", "1.0", [3]bool{false, true, false}},
		{">=", "1.0", [3]bool{false, true, true}},
		{">>", "1.0", [3]bool{false, false, true}},
	} {
		for i, v := range []string{"1.0~rc1", "1.0", "1.0-1"} {
			r := Relation{Name: "x", Op: c.op, Version: c.v}
			if got := r.SatisfiedBy(v); got != c.want[i] {
				t.Errorf("%s.SatisfiedBy(%q) = %v; want %v", r, v, got, c.want[i])
			}
		}
	}
}
