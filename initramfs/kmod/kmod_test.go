package kmod

import (
	"bytes"
	"compress/gzip"
	"debug/elf"
	"encoding/binary"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"yakimg/rootfs"
)

const release = "6.1.0-test-amd64"

// fakeModule builds a minimal relocatable x86-64 ELF file whose only
// content is a .modinfo section holding the given key=value entries, laid
// out the way modpost does it (NUL-terminated strings).
func fakeModule(t *testing.T, entries ...string) []byte {
	t.Helper()
	modinfo := []byte(strings.Join(entries, "\x00") + "\x00")
	shstrtab := []byte("\x00.modinfo\x00.shstrtab\x00")
	hdrSize := binary.Size(elf.Header64{})
	modinfoOff := hdrSize
	shstrOff := modinfoOff + len(modinfo)
	shOff := (shstrOff + len(shstrtab) + 7) &^ 7

	var b bytes.Buffer
	h := elf.Header64{
		Type: uint16(elf.ET_REL), Machine: uint16(elf.EM_X86_64), Version: uint32(elf.EV_CURRENT),
		Shoff: uint64(shOff), Ehsize: uint16(hdrSize), Shentsize: uint16(binary.Size(elf.Section64{})),
		Shnum: 3, Shstrndx: 2,
	}
	copy(h.Ident[:], elf.ELFMAG)
	h.Ident[elf.EI_CLASS] = byte(elf.ELFCLASS64)
	h.Ident[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	h.Ident[elf.EI_VERSION] = byte(elf.EV_CURRENT)
	must(t, binary.Write(&b, binary.LittleEndian, h))
	b.Write(modinfo)
	b.Write(shstrtab)
	b.Write(make([]byte, shOff-b.Len()))
	for _, s := range []elf.Section64{
		{},
		{Name: 1, Type: uint32(elf.SHT_PROGBITS), Flags: uint64(elf.SHF_ALLOC), Off: uint64(modinfoOff), Size: uint64(len(modinfo)), Addralign: 1},
		{Name: 10, Type: uint32(elf.SHT_STRTAB), Off: uint64(shstrOff), Size: uint64(len(shstrtab)), Addralign: 1},
	} {
		must(t, binary.Write(&b, binary.LittleEndian, s))
	}
	return b.Bytes()
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func synthetic(t *testing.T, name string, deps ...string) []byte {
	return fakeModule(t, "license=GPL", "depends="+strings.Join(deps, ","), "name="+name,
		"vermagic="+release+" SMP preempt mod_unload modversions ")
}

func TestParseModinfo(t *testing.T) {
	m, err := ParseModinfo(fakeModule(t, "alias=fs-demo", "depends=virtio_ring,nf-tables", "name=demo-mod",
		"vermagic=6.1.0-50-cloud-amd64 SMP preempt mod_unload modversions "))
	if err != nil {
		t.Fatalf("ParseModinfo: %v", err)
	}
	want := Module{Name: "demo_mod", Depends: []string{"virtio_ring", "nf_tables"},
		Vermagic: "6.1.0-50-cloud-amd64 SMP preempt mod_unload modversions "}
	if !reflect.DeepEqual(m, want) {
		t.Errorf("ParseModinfo = %+v; want %+v", m, want)
	}

	m, err = ParseModinfo(fakeModule(t, "depends=", "name=leaf"))
	if err != nil || m.Name != "leaf" || m.Depends != nil {
		t.Errorf("ParseModinfo(no deps) = %+v, %v; want leaf without dependencies", m, err)
	}
}

func TestParseModinfoCompressed(t *testing.T) {
	plain := synthetic(t, "squashed", "dep")
	want, err := ParseModinfo(plain)
	must(t, err)

	var xzb, zstb, gzb bytes.Buffer
	xw, err := xz.NewWriter(&xzb)
	must(t, err)
	_, err = xw.Write(plain)
	must(t, err)
	must(t, xw.Close())
	zw, err := zstd.NewWriter(&zstb)
	must(t, err)
	_, err = zw.Write(plain)
	must(t, err)
	must(t, zw.Close())
	gw := gzip.NewWriter(&gzb)
	_, err = gw.Write(plain)
	must(t, err)
	must(t, gw.Close())

	for name, b := range map[string][]byte{"xz": xzb.Bytes(), "zstd": zstb.Bytes(), "gzip": gzb.Bytes()} {
		got, err := ParseModinfo(b)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("ParseModinfo(%s) = %+v, %v; want %+v", name, got, err, want)
		}
	}
}

func TestParseModinfoRejects(t *testing.T) {
	noModinfo := fakeModule(t, "name=x")
	// Rename the section so the file is valid ELF without .modinfo.
	noModinfo = bytes.Replace(noModinfo, []byte(".modinfo\x00"), []byte(".rodata\x00\x00"), 1)
	for name, b := range map[string][]byte{
		"not ELF":    []byte("#!/bin/sh\n"),
		"no section": noModinfo,
		"no name":    fakeModule(t, "depends=a", "vermagic=x"),
		"truncated":  synthetic(t, "x")[:40],
	} {
		if m, err := ParseModinfo(b); err == nil {
			t.Errorf("ParseModinfo(%s) = %+v, nil; want an error", name, m)
		}
	}
}

func syntheticTree(t *testing.T, mods map[string][]byte) *rootfs.Tree {
	t.Helper()
	tr := rootfs.NewTree()
	for p, b := range mods {
		must(t, tr.AddFile(p, 0o644, b))
	}
	return tr
}

func TestIndex(t *testing.T) {
	dir := "lib/modules/" + release + "/kernel/"
	tr := syntheticTree(t, map[string][]byte{
		dir + "a.ko":                        synthetic(t, "a"),
		dir + "net/b-mod.ko":                synthetic(t, "b-mod", "a"),
		dir + "modules.order":               []byte("kernel/a.ko\n"),
		"lib/modules/other-release/c.ko":    synthetic(t, "c"),
		"lib/modules/" + release + "x/d.ko": synthetic(t, "d"),
	})
	idx, err := Index(tr, release)
	if err != nil {
		t.Fatalf("Index: %v", err)
	}
	want := map[string]Module{
		"a":     {Name: "a", Path: dir + "a.ko", Vermagic: release + " SMP preempt mod_unload modversions "},
		"b_mod": {Name: "b_mod", Path: dir + "net/b-mod.ko", Depends: []string{"a"}, Vermagic: release + " SMP preempt mod_unload modversions "},
	}
	if !reflect.DeepEqual(idx, want) {
		t.Errorf("Index = %+v; want %+v", idx, want)
	}
}

func TestIndexRejects(t *testing.T) {
	dir := "lib/modules/" + release + "/"
	for name, mods := range map[string]map[string][]byte{
		"wrong vermagic": {dir + "a.ko": fakeModule(t, "name=a", "vermagic=5.10.0-9-amd64 SMP")},
		"duplicate":      {dir + "a.ko": synthetic(t, "a"), dir + "extra/a.ko": synthetic(t, "a")},
		"broken":         {dir + "a.ko": []byte("garbage")},
		"empty":          {"lib/modules/other/a.ko": synthetic(t, "a")},
	} {
		if idx, err := Index(syntheticTree(t, mods), release); err == nil {
			t.Errorf("Index(%s) = %v, nil; want an error", name, idx)
		}
	}
}

func names(ms []Module) []string {
	var ns []string
	for _, m := range ms {
		ns = append(ns, m.Name)
	}
	return ns
}

func TestLoadOrder(t *testing.T) {
	idx := map[string]Module{
		"top":    {Name: "top", Depends: []string{"left", "right"}},
		"left":   {Name: "left", Depends: []string{"base"}},
		"right":  {Name: "right", Depends: []string{"base"}},
		"base":   {Name: "base"},
		"single": {Name: "single"},
		"nf_x":   {Name: "nf_x", Depends: []string{"base"}},
	}
	for _, tc := range []struct {
		wanted []string
		want   []string
	}{
		{[]string{"top"}, []string{"base", "left", "right", "top"}},
		{[]string{"single", "top", "left"}, []string{"single", "base", "left", "right", "top"}},
		{[]string{"nf-x", "base"}, []string{"base", "nf_x"}},
		{nil, nil},
	} {
		got, err := LoadOrder(idx, tc.wanted)
		if err != nil || !slices.Equal(names(got), tc.want) {
			t.Errorf("LoadOrder(%v) = %v, %v; want %v", tc.wanted, names(got), err, tc.want)
		}
	}
}

func TestLoadOrderErrors(t *testing.T) {
	idx := map[string]Module{
		"a":    {Name: "a", Depends: []string{"b"}},
		"b":    {Name: "b", Depends: []string{"c"}},
		"c":    {Name: "c", Depends: []string{"a"}},
		"user": {Name: "user", Depends: []string{"ghost"}},
	}
	for _, tc := range []struct {
		wanted []string
		want   string
	}{
		{[]string{"a"}, "module dependency cycle: a -> b -> c -> a"},
		{[]string{"user"}, "module ghost (needed by user) not found"},
		{[]string{"nope"}, "module nope not found"},
	} {
		_, err := LoadOrder(idx, tc.wanted)
		if err == nil || err.Error() != tc.want {
			t.Errorf("LoadOrder(%v) error = %v; want %q", tc.wanted, err, tc.want)
		}
	}
}

// kernelTree reads the modules of the kernel unpacked at
// $YAKIMG_TEST_KERNEL_TREE (dpkg-deb -x of linux-image-*-cloud-amd64).
func kernelTree(t *testing.T) (*rootfs.Tree, string) {
	t.Helper()
	dir := os.Getenv("YAKIMG_TEST_KERNEL_TREE")
	if dir == "" {
		t.Skip("set YAKIMG_TEST_KERNEL_TREE to an unpacked Debian kernel package (a dir with lib/modules/<release>)")
	}
	releases, err := os.ReadDir(filepath.Join(dir, "lib/modules"))
	if err != nil || len(releases) != 1 {
		t.Fatalf("YAKIMG_TEST_KERNEL_TREE=%s: want exactly one lib/modules/<release> (%v)", dir, err)
	}
	rel := releases[0].Name()
	tr := rootfs.NewTree()
	base := filepath.Join(dir, "lib/modules", rel)
	err = filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() || !isModuleFile(p) {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rp, _ := filepath.Rel(dir, p)
		return tr.AddFile(rp, 0o644, b)
	})
	must(t, err)
	return tr, rel
}

func TestRealKernelOrders(t *testing.T) {
	tr, rel := kernelTree(t)
	idx, err := Index(tr, rel)
	if err != nil {
		t.Fatalf("Index: %v", err)
	}
	if len(idx) < 1000 {
		t.Errorf("Index found %d modules; the cloud kernel ships over 1,000", len(idx))
	}
	for _, tc := range []struct {
		wanted string
		want   []string // the closure, in any order that respects dependencies
	}{
		{"virtio_blk", []string{"virtio_ring", "virtio", "virtio_blk"}},
		{"virtio_pci", []string{"virtio_ring", "virtio_pci_modern_dev", "virtio_pci_legacy_dev", "virtio", "virtio_pci"}},
		{"nf_tables", []string{"nfnetlink", "libcrc32c", "nf_tables"}},
	} {
		order, err := LoadOrder(idx, []string{tc.wanted})
		if err != nil {
			t.Errorf("LoadOrder(%s): %v", tc.wanted, err)
			continue
		}
		got := names(order)
		if !sameSet(got, tc.want) {
			t.Errorf("LoadOrder(%s) = %v; want the modules %v", tc.wanted, got, tc.want)
		}
		checkDepsFirst(t, order)
		if last := got[len(got)-1]; last != tc.wanted {
			t.Errorf("LoadOrder(%s) ends with %s; want %s", tc.wanted, last, tc.wanted)
		}
	}
	// The whole stage-1 set together, twice: the order must not vary.
	wanted := []string{"virtio_pci", "virtio_blk", "virtio_mmio", "nf_tables"}
	a, err := LoadOrder(idx, wanted)
	must(t, err)
	b, err := LoadOrder(idx, wanted)
	must(t, err)
	if !reflect.DeepEqual(a, b) {
		t.Errorf("LoadOrder(%v) differs between runs: %v vs %v", wanted, names(a), names(b))
	}
	checkDepsFirst(t, a)
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

func checkDepsFirst(t *testing.T, order []Module) {
	t.Helper()
	pos := map[string]int{}
	for i, m := range order {
		pos[m.Name] = i
	}
	for i, m := range order {
		for _, d := range m.Depends {
			if p, ok := pos[d]; !ok || p > i {
				t.Errorf("%s is loaded before its dependency %s: %v", m.Name, d, names(order))
			}
		}
	}
}
