package alpine

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"yakimg/rootfs/alpine/alpinetest"
)

func TestDefaultKeys(t *testing.T) {
	k, err := DefaultKeys()
	if err != nil {
		t.Fatal(err)
	}
	if len(k) != 16 {
		t.Errorf("DefaultKeys() has %d keys; want Alpine's 16", len(k))
	}
	for name, pub := range k {
		if !strings.HasPrefix(name, "alpine-devel@lists.alpinelinux.org-") || !strings.HasSuffix(name, ".rsa.pub") {
			t.Errorf("default key %q is not named like Alpine's keys", name)
		}
		if pub.N.BitLen() < 2048 {
			t.Errorf("default key %s has %d bits", name, pub.N.BitLen())
		}
	}
	if _, ok := k["alpine-devel@lists.alpinelinux.org-6165ee59.rsa.pub"]; !ok {
		t.Error("the x86_64 signing key of current releases (6165ee59) is missing")
	}
	// The embedded keys are the files in keys/ (LoadKeys reads the same).
	fromDir, err := LoadKeys("keys")
	if err != nil {
		t.Fatal(err)
	}
	for name, pub := range fromDir {
		if !k[name].Equal(pub) {
			t.Errorf("embedded key %s differs from keys/%s", name, name)
		}
	}
}

func TestLoadKeys(t *testing.T) {
	key := alpinetest.NewKey(t, "test.rsa.pub")
	dir := t.TempDir()
	if err := key.WritePublic(dir); err != nil {
		t.Fatal(err)
	}
	// Files that do not end in .pub are not keys and are not read.
	if err := os.WriteFile(filepath.Join(dir, "README"), []byte("not a key"), 0o644); err != nil {
		t.Fatal(err)
	}
	k, err := LoadKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(k) != 1 || k["test.rsa.pub"] == nil {
		t.Fatalf("LoadKeys = %v; want test.rsa.pub only", k)
	}
	if !k["test.rsa.pub"].Equal(keyring(t, key)["test.rsa.pub"]) {
		t.Error("loaded key differs from the written one")
	}
}

func TestLoadKeysRefuses(t *testing.T) {
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, err := x509.MarshalPKIXPublicKey(&ec.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, content, want string
	}{
		{"text.rsa.pub", "hello", "not a PEM file"},
		{"ec.pub", string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: ecDER})), "not RSA"},
		{"private.rsa.pub", string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey)})), `"RSA PRIVATE KEY"`},
		{"garbage.rsa.pub", string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte("junk")})), "parse public key"},
	} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, c.name), []byte(c.content), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := LoadKeys(dir)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), c.name) {
			t.Errorf("LoadKeys with %s = %v; want an error naming the file and %q", c.name, err, c.want)
		}
	}
	if _, err := LoadKeys(t.TempDir()); err == nil || !strings.Contains(err.Error(), "no *.pub files") {
		t.Errorf("LoadKeys(empty dir) = %v; want \"no *.pub files\"", err)
	}
	if _, err := LoadKeys(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("LoadKeys(missing dir) succeeded")
	}
}

// TestKeyringVerify covers the signature rules on their own: untrusted
// signers are skipped, every trusted signature must hold, the hash
// follows the algorithm in the file name.
func TestKeyringVerify(t *testing.T) {
	trusted := alpinetest.NewKey(t, "test.rsa.pub")
	other := alpinetest.NewKey(t, "other.rsa.pub")
	k := keyring(t, trusted)
	data := []byte("signed bytes")
	sig := func(key *alpinetest.Key, alg string) signature {
		c := *key
		c.Alg = alg
		return signature{alg: alg, key: key.Name, sig: c.Sign(data)}
	}
	for _, alg := range []string{"RSA", "RSA256", "RSA512"} {
		if signer, err := k.verify([]signature{sig(trusted, alg)}, data); err != nil || signer != trusted.Name {
			t.Errorf("verify %s = %q, %v; want test.rsa.pub", alg, signer, err)
		}
	}
	if _, err := k.verify([]signature{sig(other, "RSA256"), sig(trusted, "RSA256")}, data); err != nil {
		t.Errorf("an untrusted signature before a trusted one: %v", err)
	}
	mislabeled := sig(trusted, "RSA256")
	mislabeled.alg = "RSA512"
	impostor := sig(other, "RSA256")
	impostor.key = trusted.Name
	dsa := sig(trusted, "RSA256")
	dsa.alg = "DSA"
	for _, c := range []struct {
		name string
		sigs []signature
		want string
	}{
		{"none", nil, "not signed"},
		{"untrusted only", []signature{sig(other, "RSA256")}, "signed only by other.rsa.pub, not among the 1 trusted keys"},
		{"wrong hash", []signature{mislabeled}, "does not match"},
		{"impostor", []signature{impostor}, "does not match"},
		{"bad then good", []signature{impostor, sig(trusted, "RSA")}, "does not match"},
		{"unsupported algorithm", []signature{dsa}, `algorithm "DSA" is not supported`},
	} {
		if _, err := k.verify(c.sigs, data); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: verify = %v; want %q", c.name, err, c.want)
		}
	}
	if _, err := k.verify([]signature{sig(trusted, "RSA256")}, []byte("other bytes")); err == nil {
		t.Error("a signature verified over different bytes")
	}
}
