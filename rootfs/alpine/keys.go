package alpine

import (
	"crypto"
	"crypto/rsa"
	_ "crypto/sha1" // registers the hashes sigHashes names
	_ "crypto/sha256"
	_ "crypto/sha512"
	"crypto/x509"
	"embed"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"
)

// Keyring holds the trusted signing keys by file name, the name apk-tools
// gives them in /etc/apk/keys and signers put into ".SIGN.RSA.<name>".
type Keyring map[string]*rsa.PublicKey

//go:embed keys/*.pub
var embedded embed.FS

// DefaultKeys returns Alpine's own signing keys, shipped with yakimg (see
// keys/README.md for where they come from).
func DefaultKeys() (Keyring, error) {
	sub, err := fs.Sub(embedded, "keys")
	if err != nil {
		return nil, fmt.Errorf("embedded keys: %w", err)
	}
	return loadKeys(sub, "embedded keys")
}

// LoadKeys reads every *.pub file in dir as a PEM "PUBLIC KEY" holding an
// RSA key. A file that is not one, or a directory without any, is an
// error: a keyring that silently trusts nothing would only move the
// failure to the first signature check.
func LoadKeys(dir string) (Keyring, error) {
	return loadKeys(os.DirFS(dir), dir)
}

func loadKeys(fsys fs.FS, where string) (Keyring, error) {
	names, err := fs.Glob(fsys, "*.pub")
	if err != nil {
		return nil, fmt.Errorf("keys %s: %w", where, err)
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("keys %s: no *.pub files (Alpine public keys are named like alpine-devel@lists.alpinelinux.org-6165ee59.rsa.pub)", where)
	}
	k := Keyring{}
	for _, name := range names {
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("keys %s: %w", where, err)
		}
		pub, err := parsePublicKey(b)
		if err != nil {
			return nil, fmt.Errorf("key %s: %w", path.Join(where, name), err)
		}
		k[name] = pub
	}
	return k, nil
}

func parsePublicKey(b []byte) (*rsa.PublicKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, errors.New("not a PEM file")
	}
	if blk.Type != "PUBLIC KEY" {
		return nil, fmt.Errorf("PEM block is %q, want \"PUBLIC KEY\"", blk.Type)
	}
	pub, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse public key: %w", err)
	}
	rsaPub, ok := pub.(*rsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("key is %T, not RSA", pub)
	}
	return rsaPub, nil
}

// signature is one ".SIGN.<alg>.<key>" file of a signature member.
type signature struct {
	alg, key string
	sig      []byte
}

func (s signature) String() string { return ".SIGN." + s.alg + "." + s.key }

var sigHashes = map[string]crypto.Hash{
	"RSA":    crypto.SHA1,
	"RSA256": crypto.SHA256,
	"RSA512": crypto.SHA512,
}

// verify checks sigs over signed and returns the name of a trusted key
// that signed it. Signatures by unknown keys are skipped, as apk does (a
// mirror may be signed for several keyrings), but every signature by a
// trusted key must hold: one that does not means the content changed.
func (k Keyring) verify(sigs []signature, signed []byte) (string, error) {
	if len(sigs) == 0 {
		return "", errors.New("not signed (no .SIGN.* file)")
	}
	var signer string
	var untrusted []string
	for _, s := range sigs {
		pub, ok := k[s.key]
		if !ok {
			untrusted = append(untrusted, s.key)
			continue
		}
		h, ok := sigHashes[s.alg]
		if !ok {
			return "", fmt.Errorf("signature %s: algorithm %q is not supported (want RSA, RSA256 or RSA512)", s, s.alg)
		}
		if err := rsa.VerifyPKCS1v15(pub, h, digest(h, signed), s.sig); err != nil {
			return "", fmt.Errorf("signature %s by trusted key %s does not match the signed bytes: the content or the signature was changed (%v)", s, s.key, err)
		}
		if signer == "" {
			signer = s.key
		}
	}
	if signer == "" {
		return "", fmt.Errorf("signed only by %s, not among the %d trusted keys; to trust it, put its public key file %s into a directory (with any other keys to trust) and name that directory as keys in the [alpine] section of yakimg.toml",
			strings.Join(untrusted, ", "), len(k), untrusted[0])
	}
	return signer, nil
}

func digest(h crypto.Hash, b []byte) []byte {
	w := h.New()
	w.Write(b)
	return w.Sum(nil)
}
