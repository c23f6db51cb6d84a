package alpine

import (
	"strings"
	"testing"
)

func FuzzParseIndex(f *testing.F) {
	f.Add(sampleIndex)
	f.Add(strings.Join(resolveIndex, "\n"))
	f.Add("C:Q1AAAAAAAAAAAAAAAAAAAAAAAAAAA=\nP:a\nV:1.0_rc1-r2\nA:noarch\nD:b>=1 !c so:x\np:d=2 e\ni:f~1\n\nC:Q1AAAAAAAAAAAAAAAAAAAAAAAAAAA=\nP:b\nV:2\nA:x86_64\nD:a\n")
	f.Add("P:\n\n\nX\n")
	f.Fuzz(func(t *testing.T, s string) {
		pkgs, err := ParseIndex(strings.NewReader(s))
		if err != nil {
			return
		}
		for _, p := range pkgs {
			if err := CheckVersion(p.Version); err != nil {
				t.Errorf("accepted package %s with a bad version: %v", p.Name, err)
			}
			if err := checkChecksum(p.Checksum); err != nil {
				t.Errorf("accepted package %s with a bad checksum: %v", p.Name, err)
			}
		}
		// Whatever was accepted resolves or fails cleanly, and never
		// because of a dependency the parser let through.
		for _, p := range pkgs {
			if _, err := Resolve(pkgs, p.Arch, []string{p.Name}); err != nil && strings.Contains(err.Error(), "dependency") {
				t.Errorf("Resolve(%s) failed on a parsed dependency: %v", p.Name, err)
			}
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
		if CheckVersion(a) == nil && CheckVersion(a+"-r0") == nil && CompareVersions(a, a+"-r0") != -1 {
			t.Errorf("%q is not older than %q", a, a+"-r0")
		}
	})
}
