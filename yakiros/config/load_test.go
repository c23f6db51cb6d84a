package config

import (
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// declHead is the start of a generated declaration; what follows it begins
// on line 5.
func declHead(i int) string {
	return fmt.Sprintf("# component %d\n[component]\nname = \"svc-%04d\"\nbinary = \"/usr/bin/svc\"\n", i, i)
}

// goodDecl is a valid declaration, one of several shapes.
func goodDecl(i int) string {
	var b strings.Builder
	b.WriteString(declHead(i))
	fmt.Fprintf(&b, "args = [\"--id\", \"%d\"]\n", i)
	if i > 0 {
		fmt.Fprintf(&b, "\n[requires]\ncapabilities = [\"cap.%04d\"]\n", i-1)
	}
	fmt.Fprintf(&b, "\n[provides]\ncapabilities = [\"cap.%04d\"]\n", i)
	switch i % 5 {
	case 0:
		fmt.Fprintf(&b, "\n[lifecycle]\nreadiness_file = \"/run/svc-%04d.ready\"\nreadiness_timeout = 20\n"+
			"health_check = \"/usr/libexec/check %d\"\nhealth_interval = \"15s\"\n", i, i)
	case 1:
		b.WriteString("\n[resources]\nmemory_max = \"64M\"\nmemory_high = \"48M\"\ncpu_weight = 200\ncpu_max = \"50000 100000\"\npids_max = 32\n")
	case 2:
		b.WriteString("\n[isolation]\nnamespaces = \"mount,uts\"\nhostname = \"sandbox\"\nprivate_tmp = true\n")
	case 3:
		b.WriteString("\n[lifecycle]\nreadiness = \"notify\"\nrestart_max = 3\nrestart_window = 60\nhandoff = \"fd-passing\"\n")
	case 4:
		b.WriteString("\n[checkpoint]\nenabled = true\npreserve_fds = [\"network\"]\nmax_age = 12\n")
	}
	return b.String()
}

// broken are the ways a generated declaration is wrong: the file's text
// and the error Load must report, without the directory.
var broken = []func(dir string, i int) (text, msg string){
	func(dir string, i int) (string, string) {
		return declHead(i) + "type = service\n", "5: expected value but found \"service\" instead"
	},
	func(dir string, i int) (string, string) {
		return declHead(i) + "restart = \"always\"\n", `5: unknown key "restart" in [component]`
	},
	func(dir string, i int) (string, string) {
		return declHead(i) + "[lifecycle]\nreadiness = \"notify\"\nreadiness_timeout = 0\n",
			"7: lifecycle.readiness_timeout: must be at least 1 (seconds), not 0"
	},
	func(dir string, i int) (string, string) {
		return declHead(i) + "[resources]\nmemory_max = \"64MB\"\n",
			`6: resources.memory_max: "64MB": write "64M" for binary multiples; a trailing "B" is not accepted`
	},
	func(dir string, i int) (string, string) {
		return declHead(i) + "[lifecycle]\nreadiness_file = \"/run/x\"\nreadiness_check = \"true\"\n",
			`7: lifecycle.readiness_check: selects readiness "command", but lifecycle.readiness_file on line 6 selects "file"; keep one`
	},
	func(dir string, i int) (string, string) {
		return strings.Replace(goodDecl(i-1), fmt.Sprintf("# component %d", i-1), "# a copy", 1),
			fmt.Sprintf(`3: duplicate component name "svc-%04d" (already declared by %s)`, i-1, filepath.Join(dir, loadFile(i-1)))
	},
	func(dir string, i int) (string, string) {
		return fmt.Sprintf("# component %d\n[component]\nname = \"svc-%04d\"\n", i, i),
			fmt.Sprintf(`2: component "svc-%04d" has no binary`, i)
	},
	func(dir string, i int) (string, string) {
		return declHead(i) + "[isolation]\nhostname = \"h\"\n",
			`6: isolation.hostname: needs the uts namespace; add "uts" to isolation.namespaces`
	},
	func(dir string, i int) (string, string) {
		return declHead(i) + "\n[hotswap]\ntransfer_fds = true\n",
			"6: unknown section [hotswap]; hot-swap is chosen with handoff in [lifecycle], its details are not configurable"
	},
	func(dir string, i int) (string, string) {
		return declHead(i) + "[isolation]\nnamespaces = [\"mount\",\n  \"cgroup\"]\n",
			`6: isolation.namespaces: unknown namespace "cgroup"; known are mount (or mnt), pid, net, uts, ipc and user`
	},
}

func loadFile(i int) string { return fmt.Sprintf("%04d-svc.toml", i) }

// writeLoadDir writes 1,000 declarations of which every 20th (50) is broken,
// and returns the names that must load and the errors that must be reported.
func writeLoadDir(t testing.TB, dir string) (names, errs []string) {
	files := map[string]string{}
	for i := range 1000 {
		if i%20 != 7 {
			files[loadFile(i)] = goodDecl(i)
			names = append(names, fmt.Sprintf("svc-%04d", i))
			continue
		}
		text, msg := broken[(i/20)%len(broken)](dir, i)
		files[loadFile(i)] = text
		errs = append(errs, filepath.Join(dir, loadFile(i))+":"+msg)
	}
	writeFiles(t, dir, files)
	return names, errs
}

// One broken file in twenty, in ten different ways: exactly those are
// reported, each with its line, and all the others load.
func TestLoad1000With50Broken(t *testing.T) {
	dir := t.TempDir()
	wantNames, wantErrs := writeLoadDir(t, dir)
	if len(wantNames) != 950 || len(wantErrs) != 50 {
		t.Fatalf("generated %d good and %d broken declarations; want 950 and 50", len(wantNames), len(wantErrs))
	}
	comps, errs := Load(dir)
	var names, msgs []string
	for _, c := range comps {
		names = append(names, c.Name)
	}
	for _, err := range errs {
		msgs = append(msgs, err.Error())
	}
	if !reflect.DeepEqual(names, wantNames) {
		t.Errorf("Load loaded %d components; want the %d good ones in file order", len(names), len(wantNames))
	}
	if !reflect.DeepEqual(msgs, wantErrs) {
		t.Errorf("Load errors =\n%s\nwant\n%s", strings.Join(msgs, "\n"), strings.Join(wantErrs, "\n"))
	}
}

func BenchmarkLoad1000(b *testing.B) {
	dir := b.TempDir()
	writeLoadDir(b, dir)
	for b.Loop() {
		if comps, _ := Load(dir); len(comps) != 950 {
			b.Fatalf("Load loaded %d components; want 950", len(comps))
		}
	}
}
