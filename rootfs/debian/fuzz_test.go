package debian

import (
	"strings"
	"testing"
)

func FuzzParsePackages(f *testing.F) {
	f.Add(sampleIndex)
	f.Add(synthetic)
	f.Fuzz(func(t *testing.T, s string) {
		pkgs, err := ParsePackages(strings.NewReader(s))
		if err != nil {
			return
		}
		for _, p := range pkgs {
			if err := CheckVersion(p.Version); err != nil {
				t.Errorf("accepted package %s with bad version: %v", p.Name, err)
			}
		}
		// Resolving anything parsed must not panic.
		if len(pkgs) > 0 {
			_, _ = Resolve(pkgs, "amd64", []string{pkgs[0].Name})
		}
	})
}

func FuzzCompareVersions(f *testing.F) {
	for _, c := range versionCases {
		f.Add(c.a, c.b)
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		if CompareVersions(a, b) != -CompareVersions(b, a) {
			t.Errorf("CompareVersions(%q, %q) is not antisymmetric", a, b)
		}
		if CompareVersions(a, a) != 0 {
			t.Errorf("CompareVersions(%q, itself) != 0", a)
		}
	})
}
