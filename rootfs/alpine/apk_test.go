package alpine

import (
	"archive/tar"
	"bytes"
	"crypto/sha1"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"yakimg/rootfs/alpine/alpinetest"
)

// tarEntry is what the tests look at in a data tar.
type tarEntry struct {
	typ      byte
	mode     int64
	uid, gid int
	data     string
	link     string
	checksum string // PAX APK-TOOLS.checksum.SHA1
}

func readDataTar(t *testing.T, v *Verified) map[string]tarEntry {
	t.Helper()
	r, err := v.DataTar()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]tarEntry{}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("data tar: %v", err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatalf("data tar %s: %v", h.Name, err)
		}
		out[h.Name] = tarEntry{h.Typeflag, h.Mode, h.Uid, h.Gid, string(data), h.Linkname, h.PAXRecords["APK-TOOLS.checksum.SHA1"]}
	}
}

func sha1Hex(s string) string {
	sum := sha1.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

func TestVerify(t *testing.T) {
	_, key, bs := testMirror(t)
	b := built(t, bs, "busybox", "1.36.1-r29")
	v, err := Verify(b.APK, indexEntry(b), keyring(t, key))
	if err != nil {
		t.Fatal(err)
	}
	if v.Checksum != b.Checksum || v.SignedBy != "test.rsa.pub" {
		t.Errorf("Verified checksum %s signed by %q; want %s by test.rsa.pub", v.Checksum, v.SignedBy, b.Checksum)
	}
	for k, want := range map[string][]string{
		"pkgname": {"busybox"}, "pkgver": {"1.36.1-r29"}, "arch": {"x86_64"},
		"depend": {"so:libc.musl-x86_64.so.1"}, "provides": {"cmd:busybox=1.36.1-r29"},
	} {
		if got := v.Info[k]; !reflect.DeepEqual(got, want) {
			t.Errorf(".PKGINFO %s = %q; want %q", k, got, want)
		}
	}
	if got := string(v.Scripts[".post-install"]); got != testPkgs[1].Scripts[".post-install"] {
		t.Errorf(".post-install = %q", got)
	}
	files := readDataTar(t, v)
	bin := files["bin/busybox"]
	if bin.typ != tar.TypeReg || bin.mode != 0o755 || bin.data != "\x7fELF busybox 1.36.1" || bin.checksum != sha1Hex(bin.data) {
		t.Errorf("bin/busybox = %+v", bin)
	}
	if d := files["bin/"]; d.typ != tar.TypeDir {
		t.Errorf("bin/ = %+v; want the parent directory entry", d)
	}

	// Another signature type, and the digests a lock would record.
	k := *key
	k.Alg = "RSA"
	sha1Signed := alpinetest.Build(t, &k, testArch, testPkgs[1])
	if _, err := Verify(sha1Signed.APK, indexEntry(sha1Signed), keyring(t, key)); err != nil {
		t.Errorf("package signed with RSA (SHA-1): %v", err)
	}
	if sha1Signed.Checksum != b.Checksum {
		t.Error("the signature changed the control member's checksum")
	}
}

// TestVerifyData checks the special entries of the data tar: symlinks
// (whose checksum is of the target, as abuild-tar makes it), directory
// modes with sticky and other bits, owners.
func TestVerifyData(t *testing.T) {
	_, key, bs := testMirror(t)
	files := map[string]tarEntry{}
	for _, b := range bs {
		v, err := Verify(b.APK, indexEntry(b), keyring(t, key))
		if err != nil {
			t.Fatal(err)
		}
		for name, e := range readDataTar(t, v) {
			files[b.Name+":"+name] = e
		}
	}
	for name, want := range map[string]tarEntry{
		"musl:lib/libc.musl-x86_64.so.1": {typ: tar.TypeSymlink, mode: 0o777, link: "ld-musl-x86_64.so.1", checksum: sha1Hex("ld-musl-x86_64.so.1")},
		"busybox-binsh:bin/sh":           {typ: tar.TypeSymlink, mode: 0o777, link: "/bin/busybox", checksum: sha1Hex("/bin/busybox")},
		"alpine-baselayout:tmp/":         {typ: tar.TypeDir, mode: 0o1777},
		"alpine-baselayout:var/empty/":   {typ: tar.TypeDir, mode: 0o555},
		"alpine-baselayout:etc/shadow":   {typ: tar.TypeReg, mode: 0o640, gid: 42, data: "root:*::0:::::\n", checksum: sha1Hex("root:*::0:::::\n")},
	} {
		if got := files[name]; got != want {
			t.Errorf("%s = %+v; want %+v", name, got, want)
		}
	}
}

// TestVerifyEveryByte changes each byte of a package in turn and checks
// that Verify refuses it naming the member that changed. Signature member
// changes that leave its content intact (gzip header fields) are allowed,
// as in apk-tools: they carry nothing.
func TestVerifyEveryByte(t *testing.T) {
	_, key, bs := testMirror(t)
	b := built(t, bs, "busybox", "1.36.1-r29")
	keys, want := keyring(t, key), indexEntry(b)
	_, sigContent, rest, err := nextMember(b.APK, maxSignatureLen)
	if err != nil {
		t.Fatal(err)
	}
	_, _, data, err := nextMember(rest, maxControl)
	if err != nil {
		t.Fatal(err)
	}
	sigEnd, ctlEnd := len(b.APK)-len(rest), len(b.APK)-len(data)
	harmless := 0
	for i := range b.APK {
		apk := bytes.Clone(b.APK)
		apk[i] ^= 0x01
		_, err := Verify(apk, want, keys)
		if err != nil && !strings.HasPrefix(err.Error(), "verify busybox-1.36.1-r29: ") {
			t.Fatalf("byte %d: error %q does not name the package", i, err)
		}
		switch {
		case i >= ctlEnd:
			if err == nil || !strings.Contains(err.Error(), "data member: sha256 is") {
				t.Fatalf("byte %d (data member) changed: Verify = %v; want a datahash mismatch", i, err)
			}
		case i >= sigEnd:
			if err == nil || !strings.Contains(err.Error(), "control member: ") {
				t.Fatalf("byte %d (control member) changed: Verify = %v; want a control member error", i, err)
			}
		case err == nil:
			_, content, _, merr := nextMember(apk, maxSignatureLen)
			if merr != nil || !bytes.Equal(content, sigContent) {
				t.Fatalf("byte %d (signature member) changed the signature and Verify accepted it", i)
			}
			harmless++
		}
	}
	t.Logf("%d of %d signature member bytes carry nothing", harmless, sigEnd)
	if harmless > 10 {
		t.Errorf("%d single-byte changes of the signature member were accepted; only header fields should be", harmless)
	}
}

func TestVerifyRefuses(t *testing.T) {
	_, key, bs := testMirror(t)
	b := built(t, bs, "busybox", "1.36.1-r29")
	keys, want := keyring(t, key), indexEntry(b)
	defaults, err := DefaultKeys()
	if err != nil {
		t.Fatal(err)
	}
	other := alpinetest.NewKey(t, "other.rsa.pub")
	impostor := *other
	impostor.Name = key.Name
	byOther := alpinetest.Build(t, &impostor, testArch, testPkgs[1])
	_, _, rest, err := nextMember(b.APK, maxSignatureLen)
	if err != nil {
		t.Fatal(err)
	}
	older := built(t, bs, "busybox", "1.36.0-r0")
	with := func(f func(p *Package)) Package { p := want; f(&p); return p }

	for _, c := range []struct {
		name string
		apk  []byte
		want Package
		keys Keyring
		msg  string
	}{
		{"untrusted key", b.APK, want, defaults, "control member: signed only by test.rsa.pub, not among the 16 trusted keys; to trust it"},
		{"impostor key", byOther.APK, with(func(p *Package) { p.Size = int64(len(byOther.APK)) }), keys, "by trusted key test.rsa.pub does not match"},
		{"wrong C:", b.APK, with(func(p *Package) { p.Checksum = older.Checksum }), keys, "control member: checksum is " + b.Checksum + ", the index says " + older.Checksum},
		{"other package's file", older.APK, want, keys, "checksum is " + older.Checksum},
		{"wrong name", b.APK, with(func(p *Package) { p.Name = "toybox" }), keys, `.PKGINFO pkgname is "busybox", the index says "toybox"`},
		{"wrong version", b.APK, with(func(p *Package) { p.Version = "1.36.1-r30" }), keys, `pkgver is "1.36.1-r29", the index says "1.36.1-r30"`},
		{"wrong arch", b.APK, with(func(p *Package) { p.Arch = "aarch64" }), keys, `arch is "x86_64", the index says "aarch64"`},
		{"wrong size", b.APK, with(func(p *Package) { p.Size++ }), keys, "the index says " + strconv.Itoa(len(b.APK)+1)},
		{"trailing bytes", append(bytes.Clone(b.APK), 0), want, keys, "data member: sha256 is"},
		{"data swapped in", spliceData(t, b.APK, older.APK), want, keys, "data member: sha256 is"},
		{"control only", b.APK[:len(b.APK)-len(dataMember(t, b.APK))], want, keys, "data member: missing"},
		{"signature only", b.APK[:len(b.APK)-len(rest)], want, keys, "control member: missing"},
		{"unsigned", rest, want, keys, "not signed (the first gzip member is the control member)"},
		{"empty", nil, want, keys, "signature member: not gzip"},
	} {
		_, err := Verify(c.apk, c.want, c.keys)
		if err == nil || !strings.Contains(err.Error(), c.msg) || !strings.HasPrefix(err.Error(), "verify ") {
			t.Errorf("%s: Verify = %v; want %q", c.name, err, c.msg)
		}
	}

	// Every truncation fails.
	for n := range len(b.APK) {
		if _, err := Verify(b.APK[:n], want, keys); err == nil {
			t.Fatalf("Verify accepted the first %d of %d bytes", n, len(b.APK))
		}
	}
}

// dataMember is the data member of apk.
func dataMember(t *testing.T, apk []byte) []byte {
	t.Helper()
	_, _, rest, err := nextMember(apk, maxSignatureLen)
	if err != nil {
		t.Fatal(err)
	}
	_, _, data, err := nextMember(rest, maxControl)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// spliceData is apk with its data member replaced by donor's.
func spliceData(t *testing.T, apk, donor []byte) []byte {
	t.Helper()
	head := apk[:len(apk)-len(dataMember(t, apk))]
	return append(bytes.Clone(head), dataMember(t, donor)...)
}

func TestVerifyDigests(t *testing.T) {
	_, key, bs := testMirror(t)
	b := built(t, bs, "musl", "1.2.5-r0")
	v, err := Verify(b.APK, indexEntry(b), keyring(t, key))
	if err != nil {
		t.Fatal(err)
	}
	again, err := VerifyDigests(b.APK, v.ControlSHA256, v.DataSHA256)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(readDataTar(t, again), readDataTar(t, v)) || again.Checksum != v.Checksum || again.SignedBy != "" {
		t.Error("VerifyDigests gives other content than Verify")
	}
	other := built(t, bs, "busybox", "1.36.1-r29")
	for _, c := range []struct {
		name, control, data string
		apk                 []byte
		want                string
	}{
		{"other control digest", strings.Repeat("0", 64), v.DataSHA256, b.APK, "verify musl-1.2.5-r0: control member: sha256 is " + v.ControlSHA256 + ", the lock says 0000"},
		{"other data digest", v.ControlSHA256, strings.Repeat("0", 64), b.APK, "data member: sha256 is " + v.DataSHA256 + ", the lock says 0000"},
		{"other package", v.ControlSHA256, v.DataSHA256, other.APK, "verify busybox-1.36.1-r29: control member: sha256 is"},
		{"truncated", v.ControlSHA256, v.DataSHA256, b.APK[:len(b.APK)-1], "data member: sha256 is"},
	} {
		_, err := VerifyDigests(c.apk, c.control, c.data)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: VerifyDigests = %v; want %q", c.name, err, c.want)
		}
	}
	// The datahash is still checked: a package whose data does not match
	// its own .PKGINFO is refused even with digests that describe it.
	forged := spliceData(t, b.APK, other.APK)
	fv, err := split(forged)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyDigests(forged, fv.controlHash, fv.dataHash); err == nil || !strings.Contains(err.Error(), "datahash says") {
		t.Errorf("VerifyDigests of data that does not match its datahash = %v", err)
	}
}

// TestPackageFormatWithRealTools checks the bytes against GNU tar and
// OpenSSL, the tools abuild builds and signs packages with: the three
// members are one tar stream, and the signature is what
// `openssl dgst -sign` makes over the control member.
func TestPackageFormatWithRealTools(t *testing.T) {
	for _, tool := range []string{"tar", "gzip", "openssl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s: %v", tool, err)
		}
	}
	dir, key, bs := testMirror(t)
	b := built(t, bs, "busybox", "1.36.1-r29")
	apkPath := filepath.Join(dir, testArch, "busybox-1.36.1-r29.apk")
	out, err := exec.Command("sh", "-c", `gzip -dc "$1" | tar --warning=no-unknown-keyword -tf -`, "sh", apkPath).CombinedOutput()
	if err != nil {
		t.Fatalf("gzip | tar: %v\n%s", err, out)
	}
	want := ".SIGN.RSA256.test.rsa.pub\n.PKGINFO\n.post-install\nbin/\nbin/busybox\netc/\netc/securetty\n"
	if string(out) != want {
		t.Errorf("tar lists\n%s\nwant\n%s", out, want)
	}

	_, sigTar, rest, err := nextMember(b.APK, maxSignatureLen)
	if err != nil {
		t.Fatal(err)
	}
	sigs, err := readSignatures(sigTar)
	if err != nil {
		t.Fatal(err)
	}
	control := rest[:len(rest)-len(dataMember(t, b.APK))]
	tmp := t.TempDir()
	for name, content := range map[string][]byte{"control.tar.gz": control, "sig": sigs[0].sig, "key.pem": key.PublicPEM()} {
		if err := os.WriteFile(filepath.Join(tmp, name), content, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("openssl", "dgst", "-sha256", "-verify", "key.pem", "-signature", "sig", "control.tar.gz")
	cmd.Dir = tmp
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "Verified OK") {
		t.Errorf("openssl dgst -verify: %v\n%s", err, out)
	}
	// openssl reads every embedded Alpine key too.
	ents, err := os.ReadDir("keys")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".pub") {
			continue
		}
		if out, err := exec.Command("openssl", "pkey", "-pubin", "-noout", "-in", filepath.Join("keys", e.Name())).CombinedOutput(); err != nil {
			t.Errorf("openssl pkey %s: %v\n%s", e.Name(), err, out)
		}
	}
}
