package atomicfile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

func TestWriteFileReplaces(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	for _, want := range []string{"first", "second"} {
		if err := WriteFile(path, []byte(want)); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != want {
			t.Fatalf("ReadFile = %q, %v; want %q", got, err, want)
		}
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o644 {
		t.Errorf("mode = %v; want 0644", fi.Mode().Perm())
	}
	assertOnly(t, filepath.Dir(path), "f")
}

func TestFailedWriteChangesNothing(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	if err := WriteFile(path, []byte("old")); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err := Write(path, func(w io.Writer) error {
		io.WriteString(w, "partial")
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Write = %v; want the fill error", err)
	}
	if got, _ := os.ReadFile(path); string(got) != "old" {
		t.Errorf("after a failed write the file holds %q; want %q", got, "old")
	}
	assertOnly(t, dir, "f")
}

func TestUnwritableDirectory(t *testing.T) {
	if err := WriteFile("/proc/atomicfile-test/f", nil); err == nil {
		t.Fatal("write below /proc succeeded")
	}
}

// assertOnly checks that dir holds exactly the named entry: no temporary
// file is left behind.
func assertOnly(t *testing.T, dir, name string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != name {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("%s holds %q; want only %q", dir, names, name)
	}
}

func TestWriteAndRemoveDurable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	if err := WriteDurable(path, []byte("{}\n")); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != "{}\n" {
		t.Fatalf("after WriteDurable: %q, %v", b, err)
	}
	for range 2 { // a second removal finds nothing, which is no error
		if err := RemoveDurable(path); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("after RemoveDurable: %v; want the file gone", err)
	}
	if err := WriteDurable(filepath.Join(t.TempDir(), "missing", "x"), nil); err == nil {
		t.Error("WriteDurable into a missing directory succeeded")
	}
}
