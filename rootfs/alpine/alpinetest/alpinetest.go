// Package alpinetest makes Alpine repositories for tests: RSA signing
// keys, .apk v2 packages and signed APKINDEX.tar.gz files in the real
// format (the one abuild and apk index write), deterministic byte for byte
// for a given key.
//
// It deliberately shares no code with package alpine, which reads what
// this package writes: a misreading of the format would have to be made
// twice, independently, to go unnoticed.
package alpinetest

import (
	"archive/tar"
	"bytes"
	"cmp"
	"compress/gzip"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Epoch stamps every tar entry and .PKGINFO builddate, as
// SOURCE_DATE_EPOCH would.
var Epoch = time.Unix(1704067200, 0).UTC()

// Key is a signing key. Its Name is the public key's file name, which
// signatures carry (".SIGN.RSA256.<Name>").
type Key struct {
	Name string
	// Alg is the signature type written: "RSA" (SHA-1), "RSA256" (the
	// default) or "RSA512". Copy the Key to sign with another.
	Alg  string
	priv *rsa.PrivateKey
}

var (
	keysMu   sync.Mutex
	keyCache = map[string]*rsa.PrivateKey{}
)

// NewKey returns the key called name (which must end in ".pub", like
// "test.rsa.pub"). Generating RSA keys is slow, so each name gets one
// 2048-bit key per process; different names get different keys.
func NewKey(t testing.TB, name string) *Key {
	t.Helper()
	if !strings.HasSuffix(name, ".pub") || strings.Contains(name, "/") {
		t.Fatalf("alpinetest.NewKey(%q): a key name is a file name ending in .pub", name)
	}
	keysMu.Lock()
	defer keysMu.Unlock()
	priv, ok := keyCache[name]
	if !ok {
		var err error
		if priv, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			t.Fatalf("alpinetest.NewKey: %v", err)
		}
		keyCache[name] = priv
	}
	return &Key{Name: name, Alg: "RSA256", priv: priv}
}

// PublicPEM is the public key as Alpine ships it: PEM "PUBLIC KEY" (SPKI).
func (k *Key) PublicPEM() []byte {
	der, err := x509.MarshalPKIXPublicKey(&k.priv.PublicKey)
	if err != nil {
		panic(err) // an RSA public key always marshals
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// WritePublic writes the public key into dir under the key's name, the
// layout of /etc/apk/keys.
func (k *Key) WritePublic(dir string) error {
	return os.WriteFile(filepath.Join(dir, k.Name), k.PublicPEM(), 0o644)
}

// Sign returns the raw PKCS#1 v1.5 signature of data, as
// `openssl dgst -sha256 -sign` makes it for abuild-sign.
func (k *Key) Sign(data []byte) []byte {
	var h crypto.Hash
	var sum []byte
	switch k.Alg {
	case "RSA":
		s := sha1.Sum(data)
		h, sum = crypto.SHA1, s[:]
	case "RSA256":
		s := sha256.Sum256(data)
		h, sum = crypto.SHA256, s[:]
	case "RSA512":
		s := sha512.Sum512(data)
		h, sum = crypto.SHA512, s[:]
	default:
		panic(fmt.Sprintf("alpinetest: unknown signature type %q", k.Alg))
	}
	sig, err := rsa.SignPKCS1v15(nil, k.priv, h, sum)
	if err != nil {
		panic(err)
	}
	return sig
}

// SignatureMember is the gzip member abuild-sign prepends: a tar segment
// (no end-of-archive blocks) with one file ".SIGN.<Alg>.<Name>" holding
// the signature of signed.
func (k *Key) SignatureMember(signed []byte) []byte {
	return gzipBytes(tarSegment([]tarEntry{{name: ".SIGN." + k.Alg + "." + k.Name, mode: 0o644, data: k.Sign(signed)}}))
}

// File is one entry of a package's data.
type File struct {
	Path string // relative, "usr/bin/x"; a trailing "/" makes a directory
	// Mode is the permission bits including setuid/setgid/sticky; 0
	// means 0644 for a file, 0755 for a directory, 0777 for a symlink.
	Mode     int64
	UID, GID int
	Data     string
	Link     string // symlink target; makes the entry a symlink
}

// Pkg describes a package to build.
type Pkg struct {
	Name, Version string
	Arch          string // "" means the mirror's architecture; may be "noarch"
	Description   string
	Depends       []string
	Provides      []string
	InstallIf     []string
	// ProviderPriority is written as provider_priority / k: when non-zero.
	ProviderPriority int
	// Scripts are extra control files by name: ".post-install" and such.
	Scripts map[string]string
	Files   []File
}

// Built is a package as built: its bytes and what the index says of it.
type Built struct {
	Pkg
	APK           []byte
	Checksum      string // "Q1" + base64(SHA-1 of the control member)
	InstalledSize int64
}

// Filename is the package's file name in the mirror.
func (b Built) Filename() string { return b.Name + "-" + b.Version + ".apk" }

// Build makes the .apk v2 file of p for arch (used when p.Arch is empty),
// signed by key.
func Build(t testing.TB, key *Key, arch string, p Pkg) Built {
	t.Helper()
	if p.Arch == "" {
		p.Arch = arch
	}
	if p.Description == "" {
		p.Description = "test package " + p.Name
	}
	entries, size, err := dataEntries(p.Files)
	if err != nil {
		t.Fatalf("alpinetest.Build %s: %v", p.Name, err)
	}
	data := gzipBytes(tarArchive(entries))
	dataHash := sha256.Sum256(data)

	control := []tarEntry{{name: ".PKGINFO", mode: 0o644, data: pkgInfo(p, size, hex.EncodeToString(dataHash[:]))}}
	for _, name := range sortedKeys(p.Scripts) {
		control = append(control, tarEntry{name: name, mode: 0o755, data: []byte(p.Scripts[name])})
	}
	controlMember := gzipBytes(tarSegment(control))
	sum := sha1.Sum(controlMember)

	apk := slices.Concat(key.SignatureMember(controlMember), controlMember, data)
	return Built{
		Pkg:           p,
		APK:           apk,
		Checksum:      "Q1" + base64.StdEncoding.EncodeToString(sum[:]),
		InstalledSize: size,
	}
}

// pkgInfo writes .PKGINFO the way abuild does: "key = value" lines,
// repeated keys for lists, datahash last.
func pkgInfo(p Pkg, size int64, dataHash string) []byte {
	var b strings.Builder
	b.WriteString("# Generated by yakimg alpinetest\n")
	kv := func(k, v string) { fmt.Fprintf(&b, "%s = %s\n", k, v) }
	kv("pkgname", p.Name)
	kv("pkgver", p.Version)
	kv("pkgdesc", p.Description)
	kv("url", "https://example.invalid/"+p.Name)
	kv("builddate", fmt.Sprint(Epoch.Unix()))
	kv("packager", "yakimg tests <tests@example.invalid>")
	kv("size", fmt.Sprint(size))
	kv("arch", p.Arch)
	kv("origin", p.Name)
	kv("license", "MIT")
	for _, d := range p.Depends {
		kv("depend", d)
	}
	for _, d := range p.Provides {
		kv("provides", d)
	}
	if len(p.InstallIf) > 0 {
		kv("install_if", strings.Join(p.InstallIf, " "))
	}
	if p.ProviderPriority != 0 {
		kv("provider_priority", fmt.Sprint(p.ProviderPriority))
	}
	kv("datahash", dataHash)
	return []byte(b.String())
}

// IndexText is the APKINDEX text apk index writes for pkgs, in order.
func IndexText(pkgs []Built) []byte {
	var b strings.Builder
	for _, p := range pkgs {
		line := func(k byte, v string) { fmt.Fprintf(&b, "%c:%s\n", k, v) }
		line('C', p.Checksum)
		line('P', p.Name)
		line('V', p.Version)
		line('A', p.Arch)
		line('S', fmt.Sprint(len(p.APK)))
		line('I', fmt.Sprint(p.InstalledSize))
		line('T', p.Description)
		line('U', "https://example.invalid/"+p.Name)
		line('L', "MIT")
		line('o', p.Name)
		line('t', fmt.Sprint(Epoch.Unix()))
		if p.ProviderPriority != 0 {
			line('k', fmt.Sprint(p.ProviderPriority))
		}
		for _, f := range []struct {
			k    byte
			list []string
		}{{'D', p.Depends}, {'p', p.Provides}, {'i', p.InstallIf}} {
			if len(f.list) > 0 {
				line(f.k, strings.Join(f.list, " "))
			}
		}
		b.WriteString("\n")
	}
	return []byte(b.String())
}

// SignedIndex is an APKINDEX.tar.gz holding text: the gzip'd tar of
// DESCRIPTION and APKINDEX, with key's signature member in front.
func SignedIndex(key *Key, description string, text []byte) []byte {
	body := gzipBytes(tarArchive([]tarEntry{
		{name: "DESCRIPTION", mode: 0o644, data: []byte(description)},
		{name: "APKINDEX", mode: 0o644, data: text},
	}))
	return slices.Concat(key.SignatureMember(body), body)
}

// WriteMirror builds pkgs and writes a repository for arch into dir:
// <dir>/<arch>/<name>-<version>.apk for each and a signed
// <dir>/<arch>/APKINDEX.tar.gz listing them. dir is then a Mirror URL.
func WriteMirror(t testing.TB, dir, arch string, key *Key, pkgs []Pkg) []Built {
	t.Helper()
	archDir := filepath.Join(dir, arch)
	if err := os.MkdirAll(archDir, 0o755); err != nil {
		t.Fatal(err)
	}
	var built []Built
	for _, p := range pkgs {
		b := Build(t, key, arch, p)
		if err := os.WriteFile(filepath.Join(archDir, b.Filename()), b.APK, 0o644); err != nil {
			t.Fatal(err)
		}
		built = append(built, b)
	}
	idx := SignedIndex(key, "yakimg test repository", IndexText(built))
	if err := os.WriteFile(filepath.Join(archDir, "APKINDEX.tar.gz"), idx, 0o644); err != nil {
		t.Fatal(err)
	}
	return built
}

type tarEntry struct {
	name     string
	typ      byte
	mode     int64
	uid, gid int
	data     []byte
	link     string
	pax      map[string]string
}

// dataEntries turns files into the data tar's entries, sorted, with the
// parent directories abuild's tar would contain, and returns the
// installed size (the sum of file sizes).
func dataEntries(files []File) ([]tarEntry, int64, error) {
	byPath := map[string]tarEntry{}
	var size int64
	for _, f := range files {
		name := strings.TrimSuffix(f.Path, "/")
		if name == "" || path.Clean(name) != name || path.IsAbs(name) || strings.HasPrefix(name, "..") {
			return nil, 0, fmt.Errorf("file path %q is not clean and relative", f.Path)
		}
		if _, dup := byPath[name]; dup {
			return nil, 0, fmt.Errorf("file %q listed twice", name)
		}
		e := tarEntry{name: name, mode: f.Mode, uid: f.UID, gid: f.GID}
		switch {
		case strings.HasSuffix(f.Path, "/"):
			e.typ, e.name = tar.TypeDir, name+"/"
			e.mode = cmp.Or(e.mode, 0o755)
		case f.Link != "":
			e.typ, e.link = tar.TypeSymlink, f.Link
			e.mode = cmp.Or(e.mode, 0o777)
			// abuild-tar checksums a symlink's target.
			e.pax = map[string]string{"APK-TOOLS.checksum.SHA1": sha1Hex([]byte(f.Link))}
		default:
			e.typ, e.data = tar.TypeReg, []byte(f.Data)
			e.mode = cmp.Or(e.mode, 0o644)
			e.pax = map[string]string{"APK-TOOLS.checksum.SHA1": sha1Hex(e.data)}
			size += int64(len(f.Data))
		}
		byPath[name] = e
	}
	for name := range byPath {
		for dir := path.Dir(name); dir != "."; dir = path.Dir(dir) {
			if _, ok := byPath[dir]; !ok {
				byPath[dir] = tarEntry{name: dir + "/", typ: tar.TypeDir, mode: 0o755}
			}
		}
	}
	var out []tarEntry
	for _, name := range sortedKeys(byPath) {
		out = append(out, byPath[name])
	}
	return out, size, nil
}

func sha1Hex(b []byte) string {
	s := sha1.Sum(b)
	return hex.EncodeToString(s[:])
}

// tarSegment is a tar stream without the end-of-archive blocks, the form
// of the signature and control members ("abuild-tar --cut").
func tarSegment(entries []tarEntry) []byte {
	var buf bytes.Buffer
	tw := writeTar(&buf, entries)
	if err := tw.Flush(); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

// tarArchive is a complete tar stream, end blocks included.
func tarArchive(entries []tarEntry) []byte {
	var buf bytes.Buffer
	if err := writeTar(&buf, entries).Close(); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

func writeTar(buf *bytes.Buffer, entries []tarEntry) *tar.Writer {
	tw := tar.NewWriter(buf)
	for _, e := range entries {
		h := &tar.Header{
			Name:     e.name,
			Typeflag: cmp.Or(e.typ, tar.TypeReg),
			Mode:     e.mode,
			Uid:      e.uid,
			Gid:      e.gid,
			Size:     int64(len(e.data)),
			Linkname: e.link,
			ModTime:  Epoch,
			Format:   tar.FormatUSTAR,
		}
		if e.uid == 0 {
			h.Uname = "root"
		}
		if e.gid == 0 {
			h.Gname = "root"
		}
		if e.pax != nil {
			h.PAXRecords, h.Format = e.pax, tar.FormatPAX
		}
		if err := tw.WriteHeader(h); err != nil {
			panic(fmt.Sprintf("alpinetest: tar header %s: %v", e.name, err))
		}
		if _, err := tw.Write(e.data); err != nil {
			panic(err)
		}
	}
	return tw
}

func gzipBytes(b []byte) []byte {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		panic(err)
	}
	if _, err := zw.Write(b); err != nil {
		panic(err)
	}
	if err := zw.Close(); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

func sortedKeys[V any](m map[string]V) []string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
