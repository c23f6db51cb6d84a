package debian

import (
	"slices"
	"strings"
	"testing"
)

// synthetic is an index exercising every resolver rule; comments say which.
const synthetic = `Package: app
Version: 1.0
Architecture: amd64
Pre-Depends: loader
Depends: missing-lib | libfoo (>= 2), mta, api (>= 3), data, tool:any, winonly [i386], cyc-a
Filename: app

Package: loader
Version: 1
Architecture: amd64

Package: libfoo
Version: 1.5
Architecture: amd64
Filename: libfoo-1.5

Package: libfoo
Version: 2.1
Architecture: amd64
Filename: libfoo-2.1

Package: libfoo
Version: 3.0
Architecture: arm64
Filename: libfoo-arm64

Package: exim
Version: 4
Architecture: amd64
Provides: mta

Package: postfix
Version: 3
Architecture: amd64
Provides: mta

Package: api-old
Version: 1
Architecture: amd64
Provides: api (= 2)

Package: api-new
Version: 1
Architecture: amd64
Provides: api (= 3.1)

Package: api-plain
Version: 1
Architecture: amd64
Provides: api

Package: data
Version: 1
Architecture: all

Package: tool
Version: 1
Architecture: amd64
Multi-Arch: allowed

Package: winonly
Version: 1
Architecture: amd64

Package: cyc-a
Version: 1
Architecture: amd64
Depends: cyc-b

Package: cyc-b
Version: 1
Architecture: amd64
Depends: cyc-a, postfix | mta

Package: lt
Version: 1
Architecture: amd64
Depends: ver (<< 2)

Package: le
Version: 1
Architecture: amd64
Depends: ver (<= 2)

Package: eq
Version: 1
Architecture: amd64
Depends: ver (= 2~rc1)

Package: ge
Version: 1
Architecture: amd64
Depends: ver (>= 2)

Package: gt
Version: 1
Architecture: amd64
Depends: ver (>> 2)

Package: ver
Version: 1.9
Architecture: amd64

Package: ver
Version: 2~rc1
Architecture: amd64

Package: ver
Version: 2
Architecture: amd64

Package: ver
Version: 2.0.1
Architecture: amd64

Package: broken
Version: 1
Architecture: amd64
Depends: libfoo (>= 5) | nothere

Package: anyonly
Version: 1
Architecture: amd64
Depends: libfoo:any

Package: clash
Version: 1
Architecture: amd64
Depends: ver (>= 2), lt

Package: pre-a
Version: 1
Architecture: amd64
Pre-Depends: pre-b

Package: pre-b
Version: 1
Architecture: amd64
Depends: pre-c
Pre-Depends: pre-virtual (>= 1)

Package: pre-c
Version: 1
Architecture: amd64
Provides: pre-virtual (= 1)
Pre-Depends: pre-a
`

func syntheticIndex(t *testing.T) []Package {
	t.Helper()
	idx, err := ParsePackages(strings.NewReader(synthetic))
	if err != nil {
		t.Fatal(err)
	}
	return idx
}

// closure renders a result as "name=version" for compact comparison.
func closure(ps []Package) []string {
	var s []string
	for _, p := range ps {
		s = append(s, p.Name+"="+p.Version)
	}
	return s
}

func TestResolve(t *testing.T) {
	idx := syntheticIndex(t)
	got, err := Resolve(idx, "amd64", []string{"app"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"api-new=1",  // versioned Provides: api (= 2) is too old, api-plain has no version
		"app=1.0",    // the root
		"cyc-a=1",    // cycle cyc-a <-> cyc-b is fine
		"cyc-b=1",    // "postfix | mta": mta is already satisfied by exim, so no postfix
		"data=1",     // Architecture: all
		"exim=4",     // first provider of virtual "mta" by name
		"libfoo=2.1", // first satisfiable alternative, highest amd64 version
		"loader=1",   // Pre-Depends
		"tool=1",     // tool:any with Multi-Arch: allowed
	} // winonly is restricted to [i386]
	if !slices.Equal(closure(got), want) {
		t.Errorf("Resolve(app) = %q; want %q", closure(got), want)
	}

	// The index order must not change the answer.
	slices.Reverse(idx)
	again, err := Resolve(idx, "amd64", []string{"app", "app"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(closure(again), want) {
		t.Errorf("Resolve(reversed index) = %q; want %q", closure(again), want)
	}
}

func TestResolveOperators(t *testing.T) {
	idx := syntheticIndex(t)
	for root, want := range map[string]string{
		"lt": "ver=2~rc1",
		"le": "ver=2",
		"eq": "ver=2~rc1",
		"ge": "ver=2.0.1",
		"gt": "ver=2.0.1",
	} {
		got, err := Resolve(idx, "amd64", []string{root})
		if err != nil {
			t.Fatalf("Resolve(%s): %v", root, err)
		}
		if w := []string{root + "=1", want}; !slices.Equal(closure(got), w) {
			t.Errorf("Resolve(%s) = %q; want %q", root, closure(got), w)
		}
	}
}

func TestResolveVirtualRoot(t *testing.T) {
	got, err := Resolve(syntheticIndex(t), "amd64", []string{"mta"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"exim=4"}; !slices.Equal(closure(got), want) {
		t.Errorf("Resolve(mta) = %q; want %q", closure(got), want)
	}
}

func TestResolveErrors(t *testing.T) {
	idx := syntheticIndex(t)
	for _, c := range []struct {
		roots []string
		arch  string
		parts []string
	}{
		{[]string{"nosuch"}, "amd64", []string{`root "nosuch"`, "no package for amd64"}},
		{[]string{"app"}, "arm64", []string{`root "app"`}},
		{[]string{"broken"}, "amd64", []string{
			"broken 1 needs libfoo (>= 5) | nothere", "cannot be satisfied for amd64",
			"libfoo: 2.1 (amd64", "1.5 (amd64", "nothere: no such package",
		}},
		{[]string{"anyonly"}, "amd64", []string{"libfoo:any", "Multi-Arch: no"}},
		{[]string{"clash"}, "amd64", []string{"lt 1 needs ver (<< 2)", "ver 2.0.1 is already in the closure"}},
		// A Pre-Depends cycle (through a versioned provide) cannot be
		// installed; the Depends cycle of cyc-a and cyc-b above can.
		{[]string{"pre-b"}, "amd64", []string{"circular Pre-Depends: pre-a → pre-b → pre-c → pre-a"}},
	} {
		_, err := Resolve(idx, c.arch, c.roots)
		if err == nil {
			t.Errorf("Resolve(%q, %s) = nil error; want one", c.roots, c.arch)
			continue
		}
		for _, p := range c.parts {
			if !strings.Contains(err.Error(), p) {
				t.Errorf("Resolve(%q, %s) = %v; want it to mention %q", c.roots, c.arch, err, p)
			}
		}
	}
}
