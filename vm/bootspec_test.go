package vm

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestBootSpecRoundTrip(t *testing.T) {
	dir := t.TempDir()
	b := &BootSpec{Kernel: "vmlinuz", Initrd: "initramfs.cpio.zst", Disk: "disk.img",
		Append: "console=ttyS0 panic=-1", MemoryMB: 1024, CPUs: 2, Machine: "pc"}
	if err := b.Write(dir); err != nil {
		t.Fatal(err)
	}
	got, err := LoadBootSpec(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, b) {
		t.Errorf("LoadBootSpec = %+v; want %+v", got, b)
	}
	data, err := os.ReadFile(filepath.Join(dir, BootSpecFile))
	if err != nil {
		t.Fatal(err)
	}
	want := `{
  "kernel": "vmlinuz",
  "initrd": "initramfs.cpio.zst",
  "disk": "disk.img",
  "append": "console=ttyS0 panic=-1",
  "memory_mb": 1024,
  "cpus": 2,
  "machine": "pc"
}
`
	if string(data) != want {
		t.Errorf("boot.json =\n%s\nwant\n%s", data, want)
	}

	c, err := got.Config(dir)
	if err != nil {
		t.Fatal(err)
	}
	if c.Kernel != filepath.Join(dir, "vmlinuz") || c.Disk != filepath.Join(dir, "disk.img") || c.MemoryMB != 1024 || c.Append != b.Append {
		t.Errorf("Config(%s) = %+v; want absolute artifact paths and the spec's settings", dir, c)
	}
	noDisk := &BootSpec{Kernel: "vmlinuz"}
	if c, _ := noDisk.Config(dir); c.Disk != "" || c.Initrd != "" {
		t.Errorf("Config without disk and initrd = %+v; want them empty", c)
	}
}

func TestLoadBootSpecRefuses(t *testing.T) {
	for _, tc := range []struct{ json, want string }{
		{`{"kernel": "vmlinuz", "memroy_mb": 1}`, `unknown field "memroy_mb"`},
		{`{"kernel": "../vmlinuz"}`, "not a path inside the artifact directory"},
		{`{"kernel": "vmlinuz", "disk": "/etc/shadow"}`, "not a path inside the artifact directory"},
		{`{"initrd": "i"}`, "no kernel"},
		{`{"kernel": "vmlinuz", "cpus": -1}`, "must not be negative"},
		{`{"kernel": `, "unexpected EOF"},
	} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, BootSpecFile), []byte(tc.json), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadBootSpec(dir); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("LoadBootSpec(%s) error = %v; want %q", tc.json, err, tc.want)
		}
	}
	if _, err := LoadBootSpec(t.TempDir()); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("LoadBootSpec(empty dir) error = %v; want no such file", err)
	}
	if err := (&BootSpec{Kernel: "../k"}).Write(t.TempDir()); err == nil {
		t.Error("Write of a spec pointing outside its directory succeeded")
	}
}
