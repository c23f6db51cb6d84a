package debian

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"yakimg/rootfs/debian/debiantest"
)

var (
	sumA = strings.Repeat("a", 64)
	sumB = strings.Repeat("b", 64)
)

func TestParseRelease(t *testing.T) {
	text := "Origin: Debian\nSuite: stable\nCodename: bookworm\nMD5Sum:\n 0123 5 main/x\n" +
		"SHA256:\n " + sumA + "      12 main/binary-amd64/Packages\n\t" + sumB + " 7 main/binary-amd64/Packages.xz\n" +
		"Description: x\n\n"
	rel, err := parseRelease([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	if rel.suite != "stable" || rel.codename != "bookworm" || len(rel.files) != 2 ||
		rel.files["main/binary-amd64/Packages"] != (fileSum{12, sumA}) ||
		rel.files["main/binary-amd64/Packages.xz"] != (fileSum{7, sumB}) {
		t.Errorf("parseRelease = %+v", rel)
	}
}

func TestParseReleaseRefuses(t *testing.T) {
	for _, c := range []struct{ text, want string }{
		{"Suite: x\n", "no SHA256 section"},
		{"Suite: x\nSuite: y\nSHA256:\n " + sumA + " 1 p\n", `line 2: duplicate field "Suite"`},
		{"SHA256:\n " + sumA + " 1 p\n " + sumB + " 2 p\n", "line 3: p listed twice"},
		{"SHA256:\n " + sumA + " x p\n", "size \"x\" is not a byte count"},
		{"SHA256:\n " + sumA + " -1 p\n", "is not a byte count"},
		{"SHA256:\n abc 1 p\n", "is not \"<sha256> <size> <path>\""},
		{"SHA256:\n " + sumA + " 1\n", "is not \"<sha256> <size> <path>\""},
		{" x\nSHA256:\n", "line 1: continuation line before any field"},
		{"Suite x\n", "is not a \"Field: value\" line"},
		{"SHA256:\n " + sumA + " 1 p\n\nSuite: y\n", "line 4: a second stanza"},
	} {
		if _, err := parseRelease([]byte(c.text)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("parseRelease(%q) = %v; want %q", c.text, err, c.want)
		}
	}
}

func TestClearsignedText(t *testing.T) {
	in := beginSigned + "\nHash: SHA256\n\nSuite: x\n- -dash\nSHA256:\n" + beginSignature + "\n\nsig\n-----END PGP SIGNATURE-----\n"
	got, err := clearsignedText([]byte(in))
	if err != nil || string(got) != "Suite: x\n-dash\nSHA256:\n" {
		t.Errorf("clearsignedText = %q, %v", got, err)
	}
	for _, c := range []struct{ in, want string }{
		{"Suite: x\n", "not a cleartext-signed message"},
		{beginSigned + "\nHash: SHA256\n\nSuite: x\n", "no signature block"},
		{beginSigned, "no signature block"},
	} {
		if _, err := clearsignedText([]byte(c.in)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("clearsignedText(%q) = %v; want %q", c.in, err, c.want)
		}
	}
}

func TestGoodStatus(t *testing.T) {
	const (
		valid = "[GNUPG:] GOODSIG K1 x\n[GNUPG:] VALIDSIG F1 x\n"
		nokey = "[GNUPG:] ERRSIG K2 1 8 01 1 9 F2\n[GNUPG:] NO_PUBKEY K2\n"
		bad   = "[GNUPG:] BADSIG K3 x\n"
		weak  = "[GNUPG:] ERRSIG K4 1 2 01 1 5 F4\n"
	)
	for _, c := range []struct {
		status  string
		exited0 bool
		want    bool
	}{
		{valid, true, true},
		{valid + nokey, false, true}, // Debian's several keys, keyring with one
		{nokey, false, false},
		{valid + bad, false, false},
		{valid + weak, false, false},
		{valid, false, false}, // gpgv failed for a reason the status does not show
		{"", true, false},
	} {
		if got := goodStatus(c.status, c.exited0); got != c.want {
			t.Errorf("goodStatus(%q, %v) = %v; want %v", c.status, c.exited0, got, c.want)
		}
	}
}

// TestVerifyHostInRelease checks Debian's real signed Release files, as
// apt downloaded them, with Debian's keyring: each verifies, parses, and
// lists the sha256 of the Packages index apt keeps next to it. A keyring
// with only one of the several signing keys is accepted, as by apt; a
// foreign key is not.
func TestVerifyHostInRelease(t *testing.T) {
	const keyring = "/usr/share/keyrings/debian-archive-keyring.gpg"
	if _, err := os.Stat(keyring); err != nil {
		t.Skip("needs Debian's archive keyring: ", err)
	}
	paths := hostIndexFilesOrSkip(t)
	checked := 0
	for _, p := range paths {
		// deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages.lz4
		// goes with deb.debian.org_debian_dists_bookworm_InRelease.
		dir, base := filepath.Split(p)
		i := strings.Index(base, "_main_binary-amd64_Packages")
		if i < 0 {
			continue
		}
		raw, err := os.ReadFile(filepath.Join(dir, base[:i]+"_InRelease"))
		if err != nil {
			t.Logf("no InRelease for %s: %v", p, err)
			continue
		}
		text, err := verifySignature(context.Background(), keyring, raw, nil)
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		rel, err := parseRelease(text)
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		b := rawIndex(t, p)
		sum := sha256.Sum256(b)
		want := rel.files["main/binary-amd64/Packages"]
		if got := (fileSum{int64(len(b)), hex.EncodeToString(sum[:])}); got != want {
			t.Errorf("%s: %+v; its Release says %+v", p, got, want)
		}
		checked++
	}
	if checked == 0 {
		t.Skipf("no host Packages index of main with its InRelease among %q", paths)
	}
	bookworm := filepath.Join(listsDir, "deb.debian.org_debian_dists_bookworm_InRelease")
	raw, err := os.ReadFile(bookworm)
	if err != nil {
		t.Skip("partial-keyring check needs ", err)
	}
	for _, c := range []struct {
		keyring string
		ok      bool
	}{
		{"/usr/share/keyrings/debian-archive-bookworm-automatic.gpg", true},
		{debiantest.Sign(t, newMirror(t), "testing"), false},
	} {
		if _, err := os.Stat(c.keyring); err != nil {
			t.Logf("skipping keyring %s: %v", c.keyring, err)
			continue
		}
		if _, err := verifySignature(context.Background(), c.keyring, raw, nil); (err == nil) != c.ok {
			t.Errorf("verify %s with %s = %v; want ok %v", bookworm, c.keyring, err, c.ok)
		}
	}
}
