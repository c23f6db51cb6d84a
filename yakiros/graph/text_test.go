package graph

import (
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// sample is a small system in the middle of booting, with a bit of
// everything: the kernel, a finished oneshot, a capability with two
// providers, an optional requirement, an unprovided one, a cycle with a
// dependent, and a self-dependency.
func sample() *Graph {
	nodes := []Node{
		n("kernel", "ACTIVE", "", "kernel.syscalls,filesystem.proc"),
		n("mount-root", "DONE", "filesystem.proc", "filesystem.root"),
		n("udev", "ACTIVE", "filesystem.root", "hardware.settled"),
		n("net", "ACTIVE", "hardware.settled", "network.configured"),
		n("dns-a", "ACTIVE", "network.configured", "dns"),
		n("dns-b", "ACTIVE", "network.configured", "dns"),
		n("web", "ACTIVE", "network.configured,dns", "http"),
		n("app", "INACTIVE", "http,database", "app.api"),
		n("cycle-a", "CYCLE", "cap.b", "cap.a"),
		n("cycle-b", "CYCLE", "cap.a", "cap.b"),
		n("reporter", "INACTIVE", "cap.a", "report"),
		n("loner", "CYCLE", "self.cap", "self.cap"),
		n("shell", "ACTIVE", "kernel.syscalls", ""),
	}
	nodes[6].Optional = []string{"metrics"}
	return New(nodes, up(
		"kernel.syscalls=kernel", "filesystem.proc=kernel", "filesystem.root=mount-root",
		"hardware.settled=udev", "network.configured=net", "dns=dns-a,dns-b", "http=web",
		"old.cap=",
	))
}

// acyclic is sample without its cycles.
func acyclic() *Graph {
	return New(fixtures["diamond"], up("base=bottom"))
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestGoldenTexts pins every human layout. Run with -update after an
// intended change and review the diff.
func TestGoldenTexts(t *testing.T) {
	g := sample()
	texts := map[string]string{
		"tree-web":          must(g.Tree("web")).Text(),
		"tree-app":          must(g.Tree("app")).Text(),
		"tree-reporter":     must(g.Tree("reporter")).Text(),
		"tree-loner":        must(g.Tree("loner")).Text(),
		"rdeps":             g.Rdeps("network.configured").Text(),
		"rdeps-optional":    g.Rdeps("metrics").Text(),
		"rdeps-none":        g.Rdeps("report").Text(),
		"simulate-net":      must(g.SimulateRemove("net")).Text(),
		"simulate-dns-a":    must(g.SimulateRemove("dns-a")).Text(),
		"simulate-app":      must(g.SimulateRemove("app")).Text(),
		"simulate-shell":    must(g.SimulateRemove("shell")).Text(),
		"pending":           g.Pending().Text(),
		"pending-none":      New(fixtures["chain"], up("ca=a", "cb=b", "cc=c")).Pending().Text(),
		"check-cycles":      g.CheckCycles().Text(),
		"check-cycles-none": acyclic().CheckCycles().Text(),
		"scc":               g.SCCReport().Text(),
		"scc-none":          acyclic().SCCReport().Text(),
		"order":             g.Layers().Text(),
		"analyze":           g.Analyze().Text(),
		"analyze-acyclic":   acyclic().Analyze().Text(),
		"validate-fail":     g.Validate([]error{errors.New("/etc/graph.d/bad.toml:3: unknown key \"colour\" in [component]")}).Text(),
		"validate-pass":     acyclic().Validate(nil).Text(),
		"path":              must(g.Path("web", "udev")).Text(),
		"path-none":         must(g.Path("udev", "web")).Text(),
		"dot":               g.Dot(),
	}
	for name, got := range texts {
		file := filepath.Join("testdata", name+".golden")
		if *update {
			if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(file)
		if err != nil {
			t.Fatalf("%s: %v (run go test -update to create it)", name, err)
		}
		if got != string(want) {
			t.Errorf("%s: text differs from %s\ngot:\n%s\nwant:\n%s", name, file, got, want)
		}
	}
}

func TestTree(t *testing.T) {
	g := sample()
	tr := must(g.Tree("web"))
	dns := tr.Requires[1]
	if dns.Capability != "dns" || !dns.Up || len(dns.Providers) != 2 {
		t.Fatalf("Tree(web).Requires[1] = %+v; want dns, up, two providers", dns)
	}
	// dns-b needs network.configured, which dns-a's branch already expanded.
	if got := dns.Providers[1].Requires[0].Providers[0].Cut; got != "repeat" {
		t.Errorf("Tree(web): second expansion of net cut = %q; want repeat", got)
	}
	if opt := tr.Requires[2]; opt.Capability != "metrics" || !opt.Optional || opt.Up || len(opt.Providers) != 0 {
		t.Errorf("Tree(web).Requires[2] = %+v; want optional metrics, down, no provider", opt)
	}
	// The tree goes to full depth: net, udev, mount-root, kernel.
	depth, reqs := 0, tr.Requires
	for len(reqs) > 0 && len(reqs[0].Providers) > 0 {
		depth++
		reqs = reqs[0].Providers[0].Requires
	}
	if depth != 4 {
		t.Errorf("Tree(web) follows %d levels of first requirements; want 4 (net, udev, mount-root, kernel)", depth)
	}
	loop := must(g.Tree("reporter")).Requires[0].Providers[0].Requires[0].Providers[0].Requires[0].Providers[0]
	if loop.Component != "cycle-a" || loop.Cut != "cycle" {
		t.Errorf("Tree(reporter) three levels down = %+v; want cycle-a cut as cycle", loop)
	}
	if _, err := g.Tree("nope"); err == nil || err.Error() != "component 'nope' not found" {
		t.Errorf("Tree(nope) error = %v; want component 'nope' not found", err)
	}
}

func TestRdeps(t *testing.T) {
	g := sample()
	got := g.Rdeps("network.configured").Components
	want := []Dependent{{"dns-a", "ACTIVE", false}, {"dns-b", "ACTIVE", false}, {"web", "ACTIVE", false}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Rdeps(network.configured) = %v; want %v", got, want)
	}
	if got := g.Rdeps("metrics").Components; !reflect.DeepEqual(got, []Dependent{{"web", "ACTIVE", true}}) {
		t.Errorf("Rdeps(metrics) = %v; want web, optional", got)
	}
	if got := g.Rdeps("unknown").Components; len(got) != 0 {
		t.Errorf("Rdeps(unknown) = %v; want none", got)
	}
}

func TestSimulateRemove(t *testing.T) {
	g := sample()
	tests := []struct {
		name      string
		withdrawn []Withdrawn
		affected  []Affected
	}{
		{"net", []Withdrawn{{"network.configured", []string{}}}, []Affected{
			{"dns-a", "ACTIVE", "network.configured", 1},
			{"dns-b", "ACTIVE", "network.configured", 1},
			{"web", "ACTIVE", "network.configured", 1},
			{"app", "INACTIVE", "http", 2},
		}},
		// dns has another provider, so nothing is lost.
		{"dns-a", []Withdrawn{{"dns", []string{"dns-b"}}}, []Affected{}},
		{"udev", []Withdrawn{{"hardware.settled", []string{}}}, []Affected{
			{"net", "ACTIVE", "hardware.settled", 1},
			{"dns-a", "ACTIVE", "network.configured", 2},
			{"dns-b", "ACTIVE", "network.configured", 2},
			{"web", "ACTIVE", "network.configured", 2},
			{"app", "INACTIVE", "http", 3},
		}},
		{"cycle-a", []Withdrawn{{"cap.a", []string{}}}, []Affected{
			{"cycle-b", "CYCLE", "cap.a", 1},
			{"reporter", "INACTIVE", "cap.a", 1},
		}},
		// A component requiring what it provides does not affect itself.
		{"loner", []Withdrawn{{"self.cap", []string{}}}, []Affected{}},
		{"shell", []Withdrawn{}, []Affected{}},
	}
	for _, tt := range tests {
		im := must(g.SimulateRemove(tt.name))
		if !reflect.DeepEqual(im.Withdrawn, tt.withdrawn) || !reflect.DeepEqual(im.Affected, tt.affected) {
			t.Errorf("SimulateRemove(%s) = %+v, %+v; want %+v, %+v", tt.name, im.Withdrawn, im.Affected, tt.withdrawn, tt.affected)
		}
	}
	// Both providers of dns gone: web loses it, even though each alone would not.
	multi := New([]Node{
		n("net", "ACTIVE", "", "network"),
		n("dns-a", "ACTIVE", "network", "dns"),
		n("dns-b", "ACTIVE", "network", "dns"),
		n("web", "ACTIVE", "dns", ""),
	}, nil)
	want := []Affected{{"dns-a", "ACTIVE", "network", 1}, {"dns-b", "ACTIVE", "network", 1}, {"web", "ACTIVE", "dns", 2}}
	if got := must(multi.SimulateRemove("net")).Affected; !reflect.DeepEqual(got, want) {
		t.Errorf("SimulateRemove(net) with two dns providers = %+v; want %+v", got, want)
	}
	if _, err := g.SimulateRemove("nope"); err == nil {
		t.Error("SimulateRemove(nope) succeeded; want an error")
	}
}

func TestPending(t *testing.T) {
	got := sample().Pending().Components
	want := []Waiting{
		{"app", "INACTIVE", false, []Missing{{"database", []Provider{}}}},
		{"cycle-a", "CYCLE", true, []Missing{{"cap.b", []Provider{{"cycle-b", "CYCLE"}}}}},
		{"cycle-b", "CYCLE", true, []Missing{{"cap.a", []Provider{{"cycle-a", "CYCLE"}}}}},
		{"reporter", "INACTIVE", false, []Missing{{"cap.a", []Provider{{"cycle-a", "CYCLE"}}}}},
		{"loner", "CYCLE", true, []Missing{{"self.cap", []Provider{{"loner", "CYCLE"}}}}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Pending() = %+v; want %+v", got, want)
	}
	// A FAILED component whose requirements are up waits for its back-off,
	// not for capabilities.
	g := New([]Node{n("a", "FAILED", "x", "")}, up("x=b"))
	if got := g.Pending().Components; len(got) != 0 {
		t.Errorf("Pending() with requirements up = %+v; want none", got)
	}
}

func TestAnalyze(t *testing.T) {
	tests := []struct {
		name string
		g    *Graph
		want Analysis
	}{
		{"sample", sample(), Analysis{
			Components: 13, Capabilities: 15, Requirements: 14, AvgRequirements: 14.0 / 13,
			// Kernel capabilities make no edges; dns makes two (web → dns-a, dns-b).
			// The longest chain: app → web → dns-a → net → udev → mount-root.
			Edges: 12, MaxDepth: 5, SCCs: 2, LargestSCC: 2, Blocked: 4,
			NoDependents: []string{"app", "reporter", "shell"},
			Unprovided:   []string{"database"},
		}},
		{"chain", New(fixtures["chain"], nil), Analysis{
			Components: 3, Capabilities: 3, Requirements: 2, AvgRequirements: 2.0 / 3, Edges: 2, MaxDepth: 2,
			NoDependents: []string{"c"}, Unprovided: []string{},
		}},
		{"two cycles", New(fixtures["two cycles"], nil), Analysis{
			Components: 5, Capabilities: 5, Requirements: 5, AvgRequirements: 1, Edges: 5, SCCs: 2, LargestSCC: 3, Blocked: 5,
			NoDependents: []string{}, Unprovided: []string{},
		}},
		{"empty", New(nil, nil), Analysis{NoDependents: []string{}, Unprovided: []string{}}},
	}
	for _, tt := range tests {
		got := tt.g.Analyze()
		got.Cycles = nil
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: Analyze() = %+v; want %+v", tt.name, got, tt.want)
		}
	}
}

func TestValidate(t *testing.T) {
	bad := errors.New("/etc/graph.d/x.toml:2: bad")
	tests := []struct {
		name     string
		g        *Graph
		rejected []error
		valid    bool
	}{
		{"acyclic", acyclic(), nil, true},
		{"acyclic with a rejected file", acyclic(), []error{bad}, false},
		{"one self-loop", New(fixtures["self-loop"], nil), nil, false},
		// Unprovided requirements warn but do not fail.
		{"unprovided", New(fixtures["unprovided"], nil), nil, true},
	}
	for _, tt := range tests {
		v := tt.g.Validate(tt.rejected)
		if v.Valid != tt.valid {
			t.Errorf("%s: Validate().Valid = %v; want %v (%+v)", tt.name, v.Valid, tt.valid, v)
		}
	}
	v := New(fixtures["two cycles"], nil).Validate([]error{bad, bad})
	if len(v.Cycles) != 2 || len(v.Rejected) != 2 || !strings.Contains(v.Text(), "2 rejected declaration(s), 2 dependency cycle(s)") {
		t.Errorf("Validate() with two cycles and two rejections = %+v", v)
	}
	if w := New(fixtures["unprovided"], nil).Validate(nil).Warnings; len(w) != 1 {
		t.Errorf("Validate().Warnings = %v; want one about db", w)
	}
}

func TestPath(t *testing.T) {
	g := sample()
	tests := []struct {
		from, to string
		steps    []Step
		reason   string
	}{
		{"web", "udev", []Step{{"web", "network.configured"}, {"net", "hardware.settled"}, {"udev", ""}}, ""},
		{"web", "web", []Step{{"web", ""}}, ""},
		// Capabilities stand for their providers.
		{"http", "hardware.settled", []Step{{"web", "network.configured"}, {"net", "hardware.settled"}, {"udev", ""}}, ""},
		{"udev", "web", []Step{}, "'udev' does not depend on 'web', directly or indirectly; 'web' depends on 'udev'"},
		{"dns-a", "dns-b", []Step{}, "'dns-a' does not depend on 'dns-b', directly or indirectly"},
		{"app", "database", []Step{}, "no component provides 'database'"},
		{"shell", "kernel", []Step{}, "the kernel's capabilities are always up, so depending on them is no dependency on 'kernel'"},
		{"reporter", "cycle-b", []Step{{"reporter", "cap.a"}, {"cycle-a", "cap.b"}, {"cycle-b", ""}}, ""},
	}
	for _, tt := range tests {
		r := must(g.Path(tt.from, tt.to))
		if r.Found != (tt.reason == "") || !reflect.DeepEqual(r.Steps, tt.steps) || r.Reason != tt.reason {
			t.Errorf("Path(%s, %s) = %+v; want steps %v, reason %q", tt.from, tt.to, r, tt.steps, tt.reason)
		}
	}
	if _, err := g.Path("web", "nothing-by-this-name"); err == nil {
		t.Error("Path to an unknown name succeeded; want an error")
	}
}

// TestDotParses feeds the DOT text to Graphviz, including names that need
// quoting and a component named like a legend node.
func TestDotParses(t *testing.T) {
	dot, err := exec.LookPath("dot")
	if err != nil {
		t.Skip("needs graphviz (apt-get install graphviz): dot not in PATH")
	}
	odd := New([]Node{
		n("Component", "ACTIVE", `say"hi"`, `back\slash`),
		n("x", "CYCLE", `back\slash`, `say"hi"`),
	}, up(`back\slash=Component`))
	for name, g := range map[string]*Graph{"sample": sample(), "odd names": odd} {
		cmd := exec.Command(dot, "-Tcanon")
		cmd.Stdin = strings.NewReader(g.Dot())
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: dot -Tcanon: %v\n%s", name, err, out)
		}
		// Every component, capability and legend entry is its own node.
		if name == "odd names" {
			for _, id := range []string{`"cap:say\"hi\""`, `"cap:back\\slash"`, "Component", `"legend:component"`} {
				if !strings.Contains(string(out), id) {
					t.Errorf("%s: dot output lacks node %s:\n%s", name, id, out)
				}
			}
		}
	}
}
