package debian

import (
	"reflect"
	"strings"
	"testing"
)

const sampleIndex = `Package: hello
Version: 1:2.10-3
Installed-Size: 280
Architecture: amd64
Depends: libc6 (>= 2.34),
 libfoo | libbar
Pre-Depends: dpkg (>= 1.15)
Provides: greeter, greeter-api (= 2)
Description: example
 long description
 .
 more
Filename: pool/main/h/hello/hello_2.10-3_amd64.deb
Size: 53120
SHA256: 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
multi-arch: foreign
Essential: yes


Package: data
Version: 1.0
Architecture: all
`

func TestParsePackages(t *testing.T) {
	got, err := ParsePackages(strings.NewReader(sampleIndex))
	if err != nil {
		t.Fatal(err)
	}
	want := []Package{{
		Name:         "hello",
		Version:      "1:2.10-3",
		Architecture: "amd64",
		Depends: [][]Relation{
			{{Name: "libc6", Op: ">=", Version: "2.34"}},
			{{Name: "libfoo"}, {Name: "libbar"}},
		},
		PreDepends: [][]Relation{{{Name: "dpkg", Op: ">=", Version: "1.15"}}},
		Provides:   []Relation{{Name: "greeter"}, {Name: "greeter-api", Op: "=", Version: "2"}},
		Filename:   "pool/main/h/hello/hello_2.10-3_amd64.deb",
		Size:       53120,
		SHA256:     "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
		MultiArch:  "foreign",
		Essential:  true,
	}, {
		Name: "data", Version: "1.0", Architecture: "all",
	}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ParsePackages =\n%+v\nwant\n%+v", got, want)
	}
}

func TestParsePackagesRefuses(t *testing.T) {
	base := "Package: a1\nVersion: 1\nArchitecture: all\n"
	for in, why := range map[string]string{
		" x\n" + base:                                  "continuation line before any field",
		"Version: 1\nArchitecture: all\n":              "no Package field",
		base + "version: 2\n":                          "duplicate field",
		base + "Description: a\nDescription: b\n":      "duplicate field",
		"Package: a1\nVersion: 1\n":                    "no Architecture",
		"Package: a1\nVersion: x\nArchitecture: all\n": "must start with a digit",
		base + "Size: -1\n":                            "Size",
		base + "SHA256: abc\n":                         "SHA256",
		base + "Essential: maybe\n":                    "Essential",
		base + "Depends: aa <!nocheck>\n":              "build profiles",
		base + "Provides: aa | bb\n":                   "Provides",
		base + "Provides: aa (>= 1)\n":                 "Provides",
		base + "not a field\n":                         "not a \"Field: value\" line",
		base + "\nPackage: a2\nVersion: 1\nArchitecture: all\nPre-Depends: B\n": "line 5",
	} {
		_, err := ParsePackages(strings.NewReader(in))
		if err == nil || !strings.Contains(err.Error(), why) {
			t.Errorf("ParsePackages(%q) = %v; want an error about %q", in, err, why)
		}
	}
}
