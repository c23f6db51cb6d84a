package alpine

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"yakimg/rootfs/alpine/alpinetest"
)

// sampleIndex is two stanzas as Alpine writes them, with every field.
const sampleIndex = `C:Q1pnXmBGfnIwxlVu3MG+SMeJRp9aM=
P:musl
V:1.2.5-r0
A:x86_64
S:406208
I:641024
T:the musl c library (libc) implementation
U:https://musl.libc.org/
L:MIT
o:musl
m:Natanael Copa <ncopa@alpinelinux.org>
t:1711637613
c:5c6a3e6ed0e4b5c7c1a6e1a8a40e8e08e0c2b1a4
p:so:libc.musl-x86_64.so.1=1

C:Q1lwbT7Lm6vhrUIIGOxpGJ7g/9mlk=
P:busybox-binsh
V:1.36.1-r29
A:x86_64
S:1532
I:1
T:busybox ash /bin/sh
U:https://busybox.net/
L:GPL-2.0-only
o:busybox
m:Sören Tempel <soeren+alpine@soeren-tempel.net>
t:1717580834
c:81e3f6a7b93d4f1e4d2a9d8f8b1e0e4b0a7c6d5e
k:100
D:busybox=1.36.1-r29 !dash-binsh
p:/bin/sh cmd:sh=1.36.1-r29
i:busybox=1.36.1-r29 !dash
Z:a field this reader does not know

`

func TestParseIndex(t *testing.T) {
	pkgs, err := ParseIndex(strings.NewReader(sampleIndex))
	if err != nil {
		t.Fatal(err)
	}
	want := []Package{
		{
			Name: "musl", Version: "1.2.5-r0", Arch: "x86_64", Checksum: "Q1pnXmBGfnIwxlVu3MG+SMeJRp9aM=",
			Size: 406208, InstalledSize: 641024, Description: "the musl c library (libc) implementation",
			URL: "https://musl.libc.org/", License: "MIT", Origin: "musl",
			Maintainer: "Natanael Copa <ncopa@alpinelinux.org>", BuildTime: 1711637613,
			Commit: "5c6a3e6ed0e4b5c7c1a6e1a8a40e8e08e0c2b1a4", Provides: []string{"so:libc.musl-x86_64.so.1=1"},
		},
		{
			Name: "busybox-binsh", Version: "1.36.1-r29", Arch: "x86_64", Checksum: "Q1lwbT7Lm6vhrUIIGOxpGJ7g/9mlk=",
			Size: 1532, InstalledSize: 1, Description: "busybox ash /bin/sh", URL: "https://busybox.net/",
			License: "GPL-2.0-only", Origin: "busybox", Maintainer: "Sören Tempel <soeren+alpine@soeren-tempel.net>",
			BuildTime: 1717580834, Commit: "81e3f6a7b93d4f1e4d2a9d8f8b1e0e4b0a7c6d5e", ProviderPriority: 100,
			Depends:   []string{"busybox=1.36.1-r29", "!dash-binsh"},
			Provides:  []string{"/bin/sh", "cmd:sh=1.36.1-r29"},
			InstallIf: []string{"busybox=1.36.1-r29", "!dash"},
		},
	}
	if !reflect.DeepEqual(pkgs, want) {
		t.Errorf("ParseIndex =\n%+v\nwant\n%+v", pkgs, want)
	}
	// No trailing blank line is needed after the last stanza.
	if pkgs, err := ParseIndex(strings.NewReader(strings.TrimSpace(sampleIndex))); err != nil || len(pkgs) != 2 {
		t.Errorf("ParseIndex without the final blank line = %d packages, %v", len(pkgs), err)
	}
	if pkgs, err := ParseIndex(strings.NewReader("")); err != nil || len(pkgs) != 0 {
		t.Errorf("ParseIndex(\"\") = %v, %v; want no packages", pkgs, err)
	}
}

func TestParseIndexRefuses(t *testing.T) {
	const good = "C:Q1pnXmBGfnIwxlVu3MG+SMeJRp9aM=\nP:musl\nV:1.2.5-r0\nA:x86_64\n"
	for _, c := range []struct{ name, text, want string }{
		{"missing P", "C:Q1pnXmBGfnIwxlVu3MG+SMeJRp9aM=\nV:1\nA:x86_64\n", "stanza at line 1: package \"\": missing field P"},
		{"missing V and C", "P:musl\nA:x86_64\n", "missing field V, C"},
		{"missing A in second stanza", good + "\nC:Q1pnXmBGfnIwxlVu3MG+SMeJRp9aM=\nP:b\nV:1\n", "stanza at line 6: package \"b\": missing field A"},
		{"not a field line", good + "garbage\n", `line 5: "garbage" is not an "X:value" line`},
		{"two-letter field", good + "PP:x\n", `line 5: "PP:x"`},
		{"repeated field", good + "P:other\n", "line 5: field P: repeated"},
		{"bad size", good + "S:12k\n", `line 5: field S: "12k" is not a non-negative number`},
		{"negative size", good + "I:-1\n", `line 5: field I`},
		{"bad priority", good + "k:high\n", "line 5: field k"},
		{"bad dependency", good + "D:foo>=\n", `line 5: field D: dependency "foo>="`},
		{"bad dependency version", good + "D:foo>=1..2\n", `line 5: field D: dependency "foo>=1..2"`},
		{"bad provide", good + "p:foo=x\n", `line 5: field p: provides "foo=x"`},
		{"bad install_if", good + "i:foo<<1\n", "line 5: field i"},
		{"bad version", strings.Replace(good, "1.2.5-r0", "1.2.5-1", 1), `package musl: version "1.2.5-1"`},
		{"bad checksum", strings.Replace(good, "Q1pnX", "Q2pnX", 1), "is not \"Q1\" and a base64 SHA-1"},
		{"short checksum", strings.Replace(good, "Q1pnXmBGfnIwxlVu3MG+SMeJRp9aM=", "Q1AAAA", 1), "is not \"Q1\""},
		{"bad name", strings.Replace(good, "P:musl", "P:mu sl", 1), "contains a space"},
		{"empty arch", strings.Replace(good, "A:x86_64", "A:", 1), "empty architecture"},
	} {
		_, err := ParseIndex(strings.NewReader(c.text))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: ParseIndex = %v; want %q", c.name, err, c.want)
		}
	}
}

func TestReadIndex(t *testing.T) {
	dir, key, bs := testMirror(t)
	b, err := os.ReadFile(filepath.Join(dir, testArch, "APKINDEX.tar.gz"))
	if err != nil {
		t.Fatal(err)
	}
	pkgs, err := ReadIndex(b, keyring(t, key))
	if err != nil {
		t.Fatal(err)
	}
	if len(pkgs) != len(bs) {
		t.Fatalf("ReadIndex: %d packages; want %d", len(pkgs), len(bs))
	}
	for i, p := range pkgs {
		w := bs[i]
		if p.Name != w.Name || p.Version != w.Version || p.Arch != w.Arch || p.Checksum != w.Checksum ||
			p.Size != int64(len(w.APK)) || p.InstalledSize != w.InstalledSize || p.ProviderPriority != w.ProviderPriority ||
			!reflect.DeepEqual(p.Depends, w.Depends) || !reflect.DeepEqual(p.Provides, w.Provides) {
			t.Errorf("package %d = %+v; want %s-%s as built (%s)", i, p, w.Name, w.Version, w.Checksum)
		}
	}

	// Every signature type apk knows for RSA keys.
	text := alpinetest.IndexText(bs)
	for _, alg := range []string{"RSA", "RSA256", "RSA512"} {
		k := *key
		k.Alg = alg
		if _, err := ReadIndex(alpinetest.SignedIndex(&k, "x", text), keyring(t, key)); err != nil {
			t.Errorf("index signed with %s: %v", alg, err)
		}
	}
}

func TestReadIndexRefuses(t *testing.T) {
	key := alpinetest.NewKey(t, "test.rsa.pub")
	other := alpinetest.NewKey(t, "other.rsa.pub")
	text := []byte(sampleIndex)
	signed := alpinetest.SignedIndex(key, "test", text)
	defaults, err := DefaultKeys()
	if err != nil {
		t.Fatal(err)
	}
	sigMember, _, body, err := nextMember(signed, maxSignatureLen)
	if err != nil {
		t.Fatal(err)
	}
	impostor := *other
	impostor.Name = key.Name
	// A different index under the genuine signature member.
	swapped := append(append([]byte{}, sigMember...), alpinetest.SignedIndex(key, "test", []byte(strings.Replace(sampleIndex, "1.2.5-r0", "1.2.6-r0", 1)))[len(sigMember):]...)
	for _, c := range []struct {
		name string
		b    []byte
		keys Keyring
		want string
	}{
		{"untrusted signer", signed, defaults, "signed only by test.rsa.pub, not among the 16 trusted keys; to trust it"},
		{"no signature member", body, keyring(t, key), `signature member: "DESCRIPTION" is not a .SIGN`},
		{"signature only", sigMember, keyring(t, key), "nothing after the signature member"},
		{"impostor key", alpinetest.SignedIndex(&impostor, "test", text), keyring(t, key), "by trusted key test.rsa.pub does not match"},
		{"swapped content", swapped, keyring(t, key), "does not match"},
		{"not gzip", []byte("P:musl\n"), keyring(t, key), "not gzip"},
		{"empty", nil, keyring(t, key), "not gzip"},
		{"malformed stanza", alpinetest.SignedIndex(key, "t", []byte("P:x\n")), keyring(t, key), "stanza at line 1"},
	} {
		_, err := ReadIndex(c.b, c.keys)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: ReadIndex = %v; want %q", c.name, err, c.want)
		}
	}
}

// TestReadIndexEveryByte changes each byte of a signed index in turn.
// Every byte after the signature member is signed, so each change must be
// refused as a signature mismatch. In the signature member, a change must
// be refused or leave the member's content as it was (gzip header fields
// such as the timestamp carry nothing; apk-tools does not cover them
// either).
func TestReadIndexEveryByte(t *testing.T) {
	key := alpinetest.NewKey(t, "test.rsa.pub")
	keys := keyring(t, key)
	_, _, bs := testMirror(t)
	signed := alpinetest.SignedIndex(key, "test", alpinetest.IndexText(bs))
	_, sigContent, body, err := nextMember(signed, maxSignatureLen)
	if err != nil {
		t.Fatal(err)
	}
	sigEnd := len(signed) - len(body)
	harmless := 0
	for i := range signed {
		b := bytes.Clone(signed)
		b[i] ^= 0x01
		_, err := ReadIndex(b, keys)
		switch {
		case i >= sigEnd:
			if err == nil || !strings.Contains(err.Error(), "does not match") {
				t.Fatalf("byte %d (index member) changed: ReadIndex = %v; want a signature mismatch", i, err)
			}
		case err == nil:
			_, content, _, merr := nextMember(b, maxSignatureLen)
			if merr != nil || !bytes.Equal(content, sigContent) {
				t.Fatalf("byte %d (signature member) changed the signature member and ReadIndex accepted it", i)
			}
			harmless++
		}
	}
	if harmless > 10 {
		t.Errorf("%d single-byte changes of the signature member were accepted; only header fields should be", harmless)
	}
}
