package alpine

import (
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// idx builds index entries from "name version arch [k=N] [D:a,b] [p:c,d]".
func idx(t *testing.T, lines ...string) []Package {
	t.Helper()
	var out []Package
	for _, l := range lines {
		f := strings.Fields(l)
		p := Package{Name: f[0], Version: f[1], Arch: f[2], Checksum: "Q1AAAAAAAAAAAAAAAAAAAAAAAAAAA="}
		for _, x := range f[3:] {
			switch {
			case strings.HasPrefix(x, "D:"):
				p.Depends = strings.Split(x[2:], ",")
			case strings.HasPrefix(x, "p:"):
				p.Provides = strings.Split(x[2:], ",")
			case strings.HasPrefix(x, "k="):
				k, err := strconv.Atoi(x[2:])
				if err != nil {
					t.Fatal(err)
				}
				p.ProviderPriority = k
			default:
				t.Fatalf("idx: bad item %q", x)
			}
		}
		out = append(out, p)
	}
	return out
}

func names(pkgs []Package) []string {
	var out []string
	for _, p := range pkgs {
		out = append(out, p.String())
	}
	return out
}

var resolveIndex = []string{
	"musl 1.2.5-r0 x86_64 p:so:libc.musl-x86_64.so.1=1",
	"musl 1.2.4-r2 x86_64 p:so:libc.musl-x86_64.so.1=1",
	"musl 1.2.5-r0 aarch64 p:so:libc.musl-aarch64.so.1=1",
	"busybox 1.36.1-r29 x86_64 D:so:libc.musl-x86_64.so.1 p:cmd:busybox=1.36.1-r29",
	"busybox 1.36.1-r30 aarch64 D:so:libc.musl-aarch64.so.1",
	"busybox-binsh 1.36.1-r29 x86_64 k=100 D:busybox=1.36.1-r29 p:/bin/sh,cmd:sh=1.36.1-r29",
	"dash-binsh 0.5.12-r3 x86_64 k=1 D:dash p:/bin/sh,cmd:sh=0.5.12-r3",
	"alpine-baselayout 3.6.5-r0 x86_64 D:/bin/sh,alpine-baselayout-data=3.6.5-r0,alpine-keys",
	"alpine-baselayout-data 3.6.5-r0 x86_64 D:alpine-baselayout",
	"alpine-keys 2.4-r1 noarch",
	"libfoo 1.0-r0 x86_64 p:so:libfoo.so.1",
	"oldtool 1.0-r0 x86_64 D:libbar<2",
	"libbar 1.5-r0 x86_64",
	"libbar 2.1-r0 x86_64",
	"newtool 1.0-r0 x86_64 D:libbar~2",
	"sh 1.0-r0 x86_64",
	"fakesh 9.0-r0 x86_64 p:sh=9.0-r0",
	"needs-new-sh 1.0-r0 x86_64 D:sh>=2",
	"needs-foo-v 1.0-r0 x86_64 D:so:libfoo.so.1>=1",
	"needs-missing 1.0-r0 x86_64 D:nothing-like-it",
	"needs-old-musl 1.0-r0 x86_64 D:musl<1.2.5",
	"hates-busybox 1.0-r0 x86_64 D:!busybox",
	"hates-old-busybox 1.0-r0 x86_64 D:!busybox<1.36",
	"hates-sh 1.0-r0 x86_64 D:!cmd:sh",
	"self-replacing 1.0-r0 x86_64 D:!legacy p:legacy=1.0",
}

func TestResolve(t *testing.T) {
	index := idx(t, resolveIndex...)
	for _, c := range []struct {
		roots []string
		arch  string
		want  []string
	}{
		// Highest version; a so: name through its provider; the /bin/sh
		// provider of highest priority; a cycle; noarch.
		{[]string{"alpine-baselayout"}, "x86_64", []string{
			"alpine-baselayout-3.6.5-r0", "alpine-baselayout-data-3.6.5-r0", "alpine-keys-2.4-r1",
			"busybox-1.36.1-r29", "busybox-binsh-1.36.1-r29", "musl-1.2.5-r0",
		}},
		{[]string{"busybox"}, "aarch64", []string{"busybox-1.36.1-r30", "musl-1.2.5-r0"}},
		// A root may name a provided name or carry a constraint.
		{[]string{"cmd:sh"}, "x86_64", []string{"busybox-1.36.1-r29", "busybox-binsh-1.36.1-r29", "musl-1.2.5-r0"}},
		{[]string{"musl<1.2.5", "busybox"}, "x86_64", []string{"busybox-1.36.1-r29", "musl-1.2.4-r2"}},
		{[]string{"busybox", "busybox", "musl"}, "x86_64", []string{"busybox-1.36.1-r29", "musl-1.2.5-r0"}},
		// Version constraints pick the right one of two.
		{[]string{"oldtool"}, "x86_64", []string{"libbar-1.5-r0", "oldtool-1.0-r0"}},
		{[]string{"newtool"}, "x86_64", []string{"libbar-2.1-r0", "newtool-1.0-r0"}},
		// The real package wins over a provider of the same name...
		{[]string{"sh"}, "x86_64", []string{"sh-1.0-r0"}},
		// ...unless only the provider's version satisfies.
		{[]string{"needs-new-sh"}, "x86_64", []string{"fakesh-9.0-r0", "needs-new-sh-1.0-r0"}},
		// Conflicts that do not match, or that name one's own provide.
		{[]string{"hates-old-busybox", "busybox"}, "x86_64", []string{"busybox-1.36.1-r29", "hates-old-busybox-1.0-r0", "musl-1.2.5-r0"}},
		{[]string{"self-replacing"}, "x86_64", []string{"self-replacing-1.0-r0"}},
		{nil, "x86_64", nil},
	} {
		got, err := Resolve(index, c.arch, c.roots)
		if err != nil {
			t.Errorf("Resolve(%s, %v): %v", c.arch, c.roots, err)
			continue
		}
		if !slices.Equal(names(got), c.want) {
			t.Errorf("Resolve(%s, %v) = %v; want %v", c.arch, c.roots, names(got), c.want)
		}
	}
}

// TestResolveIndexOrder shuffles the index: the closure must not change.
func TestResolveIndexOrder(t *testing.T) {
	index := idx(t, resolveIndex...)
	want, err := Resolve(index, "x86_64", []string{"alpine-baselayout", "oldtool"})
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 20 {
		shuffled := slices.Clone(index)
		r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		got, err := Resolve(shuffled, "x86_64", []string{"oldtool", "alpine-baselayout"})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(names(got), names(want)) {
			t.Fatalf("shuffled index: %v; want %v", names(got), names(want))
		}
	}
}

func TestResolveRefuses(t *testing.T) {
	index := idx(t, resolveIndex...)
	for _, c := range []struct {
		roots []string
		want  string
	}{
		{[]string{"nosuch"}, `root "nosuch": no package for x86_64 is named so or provides it`},
		{[]string{"busybox>=2"}, "root needs busybox>=2, which no package for x86_64 satisfies: busybox: 1.36.1-r29 (x86_64)"},
		{[]string{"!busybox"}, `root "!busybox" is not a package name`},
		{[]string{"busybox>="}, `root "busybox>=" is not a package name`},
		{[]string{"needs-missing"}, "needs-missing-1.0-r0 needs nothing-like-it, which no package for x86_64 satisfies: no package of that name or providing it"},
		{[]string{"needs-foo-v"}, "needs so:libfoo.so.1>=1, which no package for x86_64 satisfies: so:libfoo.so.1: provided by libfoo-1.0-r0 without a version"},
		{[]string{"needs-old-musl", "busybox"}, "needs musl<1.2.5, which picks musl-1.2.4-r2, but musl-1.2.5-r0 is already in the closure"},
		{[]string{"hates-busybox", "busybox"}, "hates-busybox-1.0-r0 conflicts with busybox-1.36.1-r29 (!busybox)"},
		{[]string{"hates-sh", "cmd:sh"}, "hates-sh-1.0-r0 conflicts with !cmd:sh, which busybox-binsh-1.36.1-r29 provides"},
		// A package of another architecture is no candidate.
		{[]string{"alpine-baselayout"}, `root "alpine-baselayout": no package for aarch64`},
	} {
		arch := "x86_64"
		if strings.Contains(c.want, "aarch64") {
			arch = "aarch64"
		}
		_, err := Resolve(index, arch, c.roots)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Resolve(%v) = %v; want %q", c.roots, err, c.want)
		}
	}
	// The only /bin/sh provider left needs a package that does not exist.
	var noBusybox []Package
	for _, p := range index {
		if p.Name != "busybox-binsh" {
			noBusybox = append(noBusybox, p)
		}
	}
	_, err := Resolve(noBusybox, "x86_64", []string{"alpine-baselayout"})
	if err == nil || !strings.Contains(err.Error(), "dash-binsh-0.5.12-r3 needs dash, which no package") {
		t.Errorf("Resolve without busybox-binsh = %v; want dash-binsh's missing dependency", err)
	}
}
