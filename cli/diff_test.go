package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"yakimg/builder"
)

// manifestOnly writes an image directory holding just a manifest whose
// only output is a kernel with the given digest: diff reads nothing else
// for an artifact it does not walk.
func manifestOnly(t *testing.T, kernelSHA string) string {
	t.Helper()
	dir := t.TempDir()
	m := builder.Manifest{Format: builder.ManifestFormat, Outputs: []builder.Output{{Name: builder.KernelFile, Size: 1, SHA256: kernelSHA}}}
	data, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, builder.ManifestFile), data, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestDiffExitCodes(t *testing.T) {
	a, same, other := manifestOnly(t, "aa"), manifestOnly(t, "aa"), manifestOnly(t, "bb")
	for _, tc := range []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"diff", a, same}, exitOK, "are identical"},
		{[]string{"diff", a, other}, exitDifferent, "vmlinuz: sha256 aa → bb\n"},
		{[]string{"diff", "--json", a, other}, exitDifferent, `"artifact": "vmlinuz"`},
		{[]string{"diff", a}, exitUsage, ""},
		{[]string{"diff", a, filepath.Join(t.TempDir(), "missing")}, exitUsage, ""},
		{[]string{"diff", a, t.TempDir()}, exitUsage, ""},
	} {
		code, stdout, stderr := run(t, tc.args...)
		if code != tc.code || !strings.Contains(stdout, tc.out) {
			t.Errorf("yakimg %q = %d, stdout %q, stderr %q; want %d and %q", tc.args, code, stdout, stderr, tc.code, tc.out)
		}
	}
}
