package resolver

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"yakimg/yakiros/control"
	"yakimg/yakiros/graph"
)

// TestThousandDeclarationsFiftyBroken loads 1,000 declarations of which 50
// are broken in five different ways: the 950 good ones come up for real
// (each a oneshot that runs /bin/true), and validate names each broken file
// with the line at fault.
func TestThousandDeclarationsFiftyBroken(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 950 processes; skipped in -short mode")
	}
	in := newInstance(t)
	broken := []struct {
		text string
		line int
	}{
		{"[component]\nname = \"b%d\"\nbinary = \"/bin/true\"\ntype = \"daemon\"\n", 4},                // bad type
		{"[component]\nname = \"b%d\"\nbinary = \"/bin/true\"\nrestart = 3\n", 4},                      // unknown key
		{"[component]\nname = \"b%d\"\n\n[provides]\ncapabilities = [\"a\",\n", 5},                     // syntax
		{"[component]\nname = \"b%d\"\n", 1},                                                           // no binary
		{"[component]\nname = \"b%d\"\nbinary = \"/bin/true\"\n[lifecycle]\nhealth_interval = 5\n", 5}, // needs health_check
	}
	want := map[string]int{} // file → line of the fault
	for i := range 1000 {
		file := fmt.Sprintf("c%04d.toml", i)
		if i%20 == 7 {
			b := broken[(i/20)%len(broken)]
			if err := os.WriteFile(filepath.Join(in.dir, file), []byte(fmt.Sprintf(b.text, i)), 0o644); err != nil {
				t.Fatal(err)
			}
			want[filepath.Join(in.dir, file)] = b.line
			continue
		}
		decl(t, in.dir, file, fmt.Sprintf("c%04d", i), "oneshot", "/bin/true", nil, nil, nil)
	}
	if len(want) != 50 {
		t.Fatalf("test setup: %d broken files, want 50", len(want))
	}
	in.start()
	in.waitFor("950 oneshots DONE", func(st control.StatusData) bool {
		done := 0
		for _, c := range st.Components {
			if c.State == "DONE" {
				done++
			}
		}
		return done == 950
	})

	var v graph.Validation
	in.ctlJSON(&v, 1, "validate")
	if len(v.Rejected) != 50 {
		t.Fatalf("validate rejected %d files, want 50: %q", len(v.Rejected), v.Rejected)
	}
	lineOf := regexp.MustCompile(`^(.+\.toml):(\d+): `)
	for _, r := range v.Rejected {
		m := lineOf.FindStringSubmatch(r)
		if m == nil {
			t.Errorf("rejection %q does not start with file:line:", r)
			continue
		}
		if line, ok := want[m[1]]; !ok || fmt.Sprint(line) != m[2] {
			t.Errorf("rejection %q; want line %d of a broken file", r, want[m[1]])
		}
	}
}
