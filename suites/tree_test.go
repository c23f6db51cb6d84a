package suites

import (
	"strings"
	"testing"
)

// texts returns the entries' texts, depth first, indented by depth.
func texts(n *treeNode, depth int) []string {
	var out []string
	for _, c := range n.Children {
		out = append(out, strings.Repeat(" ", depth)+c.Text)
		out = append(out, texts(c, depth+1)...)
	}
	return out
}

func TestParseTreeGuest(t *testing.T) {
	sections, err := parseTree(readGuest(t, "tree.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if len(sections) != 2 || sections[0].Text != "test-monitor" || sections[1].Text != "provides:" {
		t.Fatalf("sections = %+v", sections)
	}
	want := []string{
		"requires: test.echo (UP, from test-echo-server)",
		" requires: network.configured (UP, from network-setup)",
		"  requires: filesystem.sys (UP, from kernel)",
		"requires: test.web (UP, from test-web-server)",
		" requires: network.configured (UP, from network-setup) [see above]",
		" requires: files (UP, from files-setup)",
		"  requires: filesystem.run (UP, from kernel)",
		"requires: test.database (UP, from test-database)",
		" requires: storage (UP, from storage-setup)",
		"  requires: filesystem.proc (UP, from kernel)",
	}
	if got := texts(sections[0], 0); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("tree =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if got := texts(sections[1], 0); len(got) != 1 || got[0] != "test.monitor" {
		t.Errorf("provides = %v", got)
	}
	if n := sections[0].find(func(s string) bool { return strings.HasPrefix(s, "requires: files ") }); n == nil || len(n.Children) != 1 {
		t.Errorf("find(files) = %+v", n)
	}
	m := guestModel(t)
	if err := checkTree(sections[0], "test-monitor", m, map[string]bool{"test-monitor": true}); err != nil {
		t.Errorf("checkTree(guest) = %v", err)
	}
}

// The reference's layout for several providers and optional requirements
// parses too.
const viaTree = `web
├── requires: dns (UP, from dns-a, dns-b)
│   ├── via dns-a (ACTIVE)
│   │   └── requires: network.configured (UP, from net)
│   └── via dns-b (ACTIVE)
│       └── requires: network.configured (UP, from net) [see above]
└── optional: metrics (DOWN)
provides:
├── http
└── https
`

func TestParseTreeVia(t *testing.T) {
	sections, err := parseTree(viaTree)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(texts(sections[0], 0), "|")
	want := "requires: dns (UP, from dns-a, dns-b)| via dns-a (ACTIVE)|  requires: network.configured (UP, from net)| via dns-b (ACTIVE)|" +
		"  requires: network.configured (UP, from net) [see above]|optional: metrics (DOWN)"
	if got != want {
		t.Errorf("tree = %s\nwant   %s", got, want)
	}
	if got := texts(sections[1], 0); len(got) != 2 {
		t.Errorf("provides = %v", got)
	}
}

func TestParseTreeRejectsBadDrawing(t *testing.T) {
	for _, tc := range []struct{ name, from, to, want string }{
		{"├── as last", "└── optional: metrics (DOWN)", "├── optional: metrics (DOWN)", "drawn with ├── but is entry 2 of 2"},
		{"└── not last", "├── http", "└── http", `"https" follows "http", which is drawn as the last entry`},
		{"│ under a last entry", "│   ├── via dns-a (ACTIVE)", "│   └── via dns-a (ACTIVE)", `indent 2 is "│   "; want "    "`},
		{"│ under └──", "│       └── requires: network.configured (UP, from net) [see above]", "│   │   └── requires: network.configured (UP, from net) [see above]",
			`indent 2 is "│   "; want "    "`},
		{"space under ├──", "│   │   └── requires: network.configured (UP, from net)\n", "│       └── requires: network.configured (UP, from net)\n",
			`indent 2 is "    "; want "│   "`},
		{"too deep", "│   ├── via dns-a (ACTIVE)\n", "│   │   ├── via dns-a (ACTIVE)\n", "nested 3 levels deep under an entry at depth 1"},
		{"empty line", "provides:\n", "\nprovides:\n", "line 8 is empty"},
	} {
		in := strings.Replace(viaTree, tc.from, tc.to, 1)
		if in == viaTree {
			t.Fatalf("%s: the change does not apply", tc.name)
		}
		if s, err := parseTree(in); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: parseTree = %v, %v; want an error with %q", tc.name, s, err, tc.want)
		}
	}
	if s, err := parseTree("├── requires: x (DOWN)\n"); err == nil {
		t.Errorf("parseTree(entry before heading) = %v, nil error", s)
	}
}

func TestParseRequirement(t *testing.T) {
	for _, tc := range []struct {
		text string
		want requirement
		ok   bool
	}{
		{"requires: a.b (UP, from x)", requirement{Capability: "a.b", Up: true, Providers: []string{"x"}}, true},
		{"requires: dns (UP, from dns-a, dns-b)", requirement{Capability: "dns", Up: true, Providers: []string{"dns-a", "dns-b"}}, true},
		{"requires: db (DOWN)", requirement{Capability: "db"}, true},
		{"requires: cap.a (DOWN, declared by cycle-a) [cycle]", requirement{Capability: "cap.a", Providers: []string{"cycle-a"}, Cut: "cycle"}, true},
		{"requires: n (UP, from net) [see above]", requirement{Capability: "n", Up: true, Providers: []string{"net"}, Cut: "see above"}, true},
		{"requires: n (UP)", requirement{}, false},
		{"requires: n (DOWN, declared by)", requirement{}, false},
		{"optional: metrics (DOWN)", requirement{}, false},
		{"requires: n (UP, from net) [later]", requirement{}, false},
	} {
		got, ok := parseRequirement(tc.text)
		if ok != tc.ok || got.Capability != tc.want.Capability || got.Up != tc.want.Up || got.Cut != tc.want.Cut ||
			strings.Join(got.Providers, ",") != strings.Join(tc.want.Providers, ",") {
			t.Errorf("parseRequirement(%q) = %+v, %v; want %+v, %v", tc.text, got, ok, tc.want, tc.ok)
		}
	}
}
