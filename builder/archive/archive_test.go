package archive

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"yakimg/builder"
	"yakimg/rootfs"
	"yakimg/vm"
)

const testEpoch = 1767225600

var testPackages = []rootfs.LockedPackage{
	{Name: "busybox-static", Version: "1:1.35.0-4+deb12u1+b1", Arch: "amd64", Filename: "pool/main/b/busybox/busybox-static_1.35.0-4+deb12u1+b1_amd64.deb", Size: 928188, SHA256: strings.Repeat("3d", 32), Source: "debian"},
	{Name: "linux-image-6.1.0-50-cloud-amd64", Version: "6.1.176-1", Arch: "amd64", Filename: "pool/main/l/linux-signed-amd64/linux-image-6.1.0-50-cloud-amd64_6.1.176-1_amd64.deb", Size: 26484304, SHA256: strings.Repeat("ef", 32), Source: "debian"},
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// testImage writes a synthetic image directory (a sparse 8 MiB disk with
// some data in it) whose manifest hashes its files, and returns it with
// the content of the lock it claims to be built from.
func testImage(t *testing.T) (dir string, lock []byte) {
	t.Helper()
	dir = t.TempDir()
	l := &rootfs.Lock{Format: rootfs.LockFormat, Packages: testPackages}
	lockPath := filepath.Join(t.TempDir(), builder.LockFile)
	must(t, l.Write(lockPath))
	lock, err := os.ReadFile(lockPath)
	must(t, err)

	must(t, os.WriteFile(filepath.Join(dir, builder.KernelFile), bytes.Repeat([]byte("kernel"), 1000), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, builder.InitramfsFile), []byte("not really zstd"), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, vm.BootSpecFile), []byte(`{"kernel":"vmlinuz","initrd":"initramfs.cpio.zst","disk":"disk.img","append":"console=ttyS0","memory_mb":256,"cpus":1,"machine":"pc"}`+"\n"), 0o644))
	disk, err := os.Create(filepath.Join(dir, builder.DiskFile))
	must(t, err)
	must(t, disk.Truncate(8<<20))
	_, err = disk.WriteAt(bytes.Repeat([]byte("ext4"), 1024), 1<<20)
	must(t, err)
	must(t, disk.Close())

	m := builder.Manifest{
		Format:          builder.ManifestFormat,
		ImageDigest:     "sha256:" + strings.Repeat("27", 32),
		LockDigest:      l.Digest(),
		SourceDateEpoch: testEpoch,
		Packages:        testPackages,
	}
	for _, name := range []string{builder.KernelFile, builder.InitramfsFile, builder.DiskFile, vm.BootSpecFile} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		must(t, err)
		sum := sha256.Sum256(data)
		m.Outputs = append(m.Outputs, builder.Output{Name: name, Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:])})
	}
	data, err := json.MarshalIndent(m, "", "  ")
	must(t, err)
	must(t, os.WriteFile(filepath.Join(dir, builder.ManifestFile), data, 0o644))
	return dir, lock
}

func create(t *testing.T, dir string, lock []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	must(t, Create(&b, dir, lock))
	return b.Bytes()
}

// problems returns the problems Verify finds, failing on any other error.
func problems(t *testing.T, data []byte) []string {
	t.Helper()
	_, err := Verify(bytes.NewReader(data))
	if err == nil {
		return nil
	}
	var c *CorruptError
	if !errors.As(err, &c) {
		t.Fatalf("Verify: %v; want nil or a *CorruptError", err)
	}
	return c.Problems
}

func TestCreateVerifyExtract(t *testing.T) {
	dir, lock := testImage(t)
	a := create(t, dir, lock)
	if b := create(t, dir, lock); !bytes.Equal(a, b) {
		t.Fatal("two archives of the same image differ")
	}
	if p := problems(t, a); p != nil {
		t.Fatalf("Verify of a fresh archive: %q", p)
	}

	tr := tar.NewReader(bytes.NewReader(a))
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		must(t, err)
		names = append(names, h.Name)
		if h.Mode != 0o644 || h.Uid != 0 || h.Gid != 0 || h.Uname != "" || h.Gname != "" || h.ModTime.Unix() != testEpoch || h.Typeflag != tar.TypeReg {
			t.Errorf("%s header = %+v; want 0644 root-owned regular file, no names, mtime %d", h.Name, h, testEpoch)
		}
	}
	if strings.Join(names, " ") != strings.Join(Members, " ") {
		t.Errorf("members %v; want %v", names, Members)
	}

	out := t.TempDir()
	m, err := Extract(bytes.NewReader(a), out)
	must(t, err)
	if m.ImageDigest != "sha256:"+strings.Repeat("27", 32) {
		t.Errorf("Extract returned manifest with image digest %s", m.ImageDigest)
	}
	for _, name := range []string{builder.ManifestFile, builder.KernelFile, builder.InitramfsFile, vm.BootSpecFile, builder.DiskFile} {
		want, err := os.ReadFile(filepath.Join(dir, name))
		must(t, err)
		got, err := os.ReadFile(filepath.Join(out, name))
		must(t, err)
		if !bytes.Equal(got, want) {
			t.Errorf("extracted %s differs from the image's", name)
		}
	}
	// The 8 MiB disk holds 4 KiB of data: extracted, it stays sparse.
	fi, err := os.Stat(filepath.Join(out, builder.DiskFile))
	must(t, err)
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Blocks*512 > 1<<20 {
		t.Errorf("extracted %s occupies %d bytes; want it sparse", builder.DiskFile, st.Blocks*512)
	}
}

func TestSBOM(t *testing.T) {
	dir, lock := testImage(t)
	out := t.TempDir()
	_, err := Extract(bytes.NewReader(create(t, dir, lock)), out)
	must(t, err)
	data, err := os.ReadFile(filepath.Join(out, SBOMMember))
	must(t, err)
	var doc struct {
		SPDXVersion       string `json:"spdxVersion"`
		DocumentNamespace string `json:"documentNamespace"`
		CreationInfo      struct {
			Created string `json:"created"`
		} `json:"creationInfo"`
		Packages []struct {
			Name, SPDXID, VersionInfo, Supplier, DownloadLocation string
			Checksums                                             []struct{ Algorithm, ChecksumValue string }
			ExternalRefs                                          []struct{ ReferenceType, ReferenceLocator string }
		} `json:"packages"`
		Relationships []struct{ SpdxElementID, RelationshipType, RelatedSpdxElement string } `json:"relationships"`
	}
	must(t, json.Unmarshal(data, &doc))
	if doc.SPDXVersion != "SPDX-2.3" || doc.CreationInfo.Created != "2026-01-01T00:00:00Z" || !strings.HasSuffix(doc.DocumentNamespace, strings.Repeat("27", 32)) {
		t.Errorf("document header = %s, %s, %s", doc.SPDXVersion, doc.CreationInfo.Created, doc.DocumentNamespace)
	}
	if len(doc.Packages) != 3 {
		t.Fatalf("%d packages; want the image and 2 Debian packages", len(doc.Packages))
	}
	bb := doc.Packages[1]
	if bb.Name != "busybox-static" || bb.VersionInfo != "1:1.35.0-4+deb12u1+b1" || bb.Supplier != "Organization: Debian" ||
		bb.DownloadLocation != "https://deb.debian.org/debian/pool/main/b/busybox/busybox-static_1.35.0-4+deb12u1+b1_amd64.deb" ||
		len(bb.Checksums) != 1 || bb.Checksums[0].Algorithm != "SHA256" || bb.Checksums[0].ChecksumValue != strings.Repeat("3d", 32) ||
		len(bb.ExternalRefs) != 1 || bb.ExternalRefs[0].ReferenceLocator != "pkg:deb/debian/busybox-static@1:1.35.0-4+deb12u1+b1?arch=amd64" {
		t.Errorf("busybox package = %+v", bb)
	}
	rels := map[string]int{}
	for _, r := range doc.Relationships {
		rels[r.RelationshipType]++
		if r.RelationshipType == "DESCRIBES" && (r.SpdxElementID != "SPDXRef-DOCUMENT" || r.RelatedSpdxElement != doc.Packages[0].SPDXID) {
			t.Errorf("DESCRIBES relationship %+v; want the document describing the image", r)
		}
	}
	if rels["DESCRIBES"] != 1 || rels["CONTAINS"] != 2 {
		t.Errorf("relationships %v; want 1 DESCRIBES and 2 CONTAINS", rels)
	}
}

func TestCorruptArchives(t *testing.T) {
	dir, lock := testImage(t)
	good := create(t, dir, lock)

	t.Run("flipped disk byte", func(t *testing.T) {
		bad := bytes.Clone(good)
		i := bytes.Index(bad, bytes.Repeat([]byte("ext4"), 16))
		if i < 0 {
			t.Fatal("disk data not found in the archive")
		}
		bad[i] ^= 0xff
		p := problems(t, bad)
		if len(p) != 1 || !strings.HasPrefix(p[0], builder.DiskFile+": sha256:") {
			t.Errorf("problems %q; want one naming %s", p, builder.DiskFile)
		}
	})
	t.Run("truncated", func(t *testing.T) {
		p := problems(t, good[:len(good)/2])
		if len(p) != 1 || !strings.HasPrefix(p[0], builder.DiskFile+": truncated: ") {
			t.Errorf("problems %q; want the truncated disk.img named", p)
		}
		if _, err := Extract(bytes.NewReader(good[:len(good)/2]), t.TempDir()); err == nil {
			t.Error("Extract accepted a truncated archive")
		}
	})
	t.Run("unexpected and unsafe members", func(t *testing.T) {
		for _, name := range []string{"../evil", "sub/disk.img", "extra.txt"} {
			var b bytes.Buffer
			tw := tar.NewWriter(&b)
			must(t, tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: 1, Typeflag: tar.TypeReg}))
			_, err := tw.Write([]byte("x"))
			must(t, err)
			must(t, tw.Close())
			out := t.TempDir()
			_, err = Extract(io.MultiReader(bytes.NewReader(good[:len(good)-1024]), &b), out)
			var c *CorruptError
			if !errors.As(err, &c) || !strings.Contains(strings.Join(c.Problems, "\n"), name) {
				t.Errorf("Extract with member %q: %v; want a problem naming it", name, err)
			}
			if _, err := os.Stat(filepath.Join(filepath.Dir(out), "evil")); err == nil {
				t.Errorf("member %q escaped the extraction directory", name)
			}
		}
	})
	t.Run("edited SBOM", func(t *testing.T) {
		bad := bytes.Replace(good, []byte(`"supplier": "Organization: Debian"`), []byte(`"supplier": "Organization: Debiam"`), 1)
		p := problems(t, bad)
		if len(p) != 1 || !strings.HasPrefix(p[0], SBOMMember) {
			t.Errorf("problems %q; want one naming %s", p, SBOMMember)
		}
	})
}

func TestCreateRefuses(t *testing.T) {
	t.Run("other lock", func(t *testing.T) {
		dir, _ := testImage(t)
		other := &rootfs.Lock{Format: rootfs.LockFormat, Packages: testPackages[:1]}
		path := filepath.Join(t.TempDir(), builder.LockFile)
		must(t, other.Write(path))
		data, err := os.ReadFile(path)
		must(t, err)
		if err := Create(io.Discard, dir, data); err == nil || !strings.Contains(err.Error(), "lock_digest") {
			t.Errorf("Create with another lock: %v; want a lock_digest refusal", err)
		}
	})
	t.Run("changed artifact", func(t *testing.T) {
		dir, lock := testImage(t)
		f, err := os.OpenFile(filepath.Join(dir, builder.DiskFile), os.O_RDWR, 0)
		must(t, err)
		_, err = f.WriteAt([]byte("X"), 4<<20)
		must(t, err)
		must(t, f.Close())
		if err := Create(io.Discard, dir, lock); err == nil || !strings.Contains(err.Error(), builder.DiskFile) {
			t.Errorf("Create of a changed disk: %v; want a refusal naming %s", err, builder.DiskFile)
		}
	})
}
