package alpine

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Verified is a package whose bytes passed Verify or VerifyDigests.
type Verified struct {
	// Info holds the .PKGINFO fields; keys that repeat (depend, provides)
	// keep every value in order.
	Info map[string][]string
	// Scripts are the control member's other files by name: ".pre-install",
	// ".post-install", ".trigger" and the like. Nothing here runs them.
	Scripts map[string][]byte
	// Checksum is the index identity, "Q1" + base64(SHA-1) of the
	// compressed control member.
	Checksum string
	// ControlSHA256 and DataSHA256 are the hex SHA-256 of the compressed
	// control and data members, what a lock records to pin the package.
	ControlSHA256, DataSHA256 string
	// SignedBy names the trusted key whose signature held; empty after
	// VerifyDigests, where the digests are the trust anchor.
	SignedBy string

	data []byte // the compressed data member
}

// DataTar returns the package's files: the uncompressed data tar, whose
// entries carry the PAX record APK-TOOLS.checksum.SHA1. The bytes were
// authenticated as a whole (datahash), so reading cannot yield forged
// content; a read error means a package built broken.
func (v *Verified) DataTar() (io.Reader, error) {
	zr, err := gzip.NewReader(bytes.NewReader(v.data))
	if err != nil {
		return nil, fmt.Errorf("data member: %w", err)
	}
	return zr, nil
}

// The control member is small (metadata and scripts); the limit guards
// against a gzip bomb before anything is authenticated.
const maxControl = 16 << 20

// apkParts is an .apk v2 split into its three gzip members.
type apkParts struct {
	sigs        []signature
	control     []byte // compressed control member
	data        []byte // compressed data member (everything after control)
	info        map[string][]string
	scripts     map[string][]byte
	controlHash string // hex SHA-256 of control
	dataHash    string // hex SHA-256 of data
}

// split cuts apk into the signature, control and data members and reads
// the control files. It authenticates nothing.
func split(apk []byte) (*apkParts, error) {
	_, sigTar, rest, err := nextMember(apk, maxSignatureLen)
	if err != nil {
		return nil, fmt.Errorf("signature member: %w", err)
	}
	p := &apkParts{}
	if p.sigs, err = readSignatures(sigTar); err != nil {
		return nil, fmt.Errorf("signature member: %w", err)
	}
	if len(rest) == 0 {
		return nil, errors.New("control member: missing (file truncated after the signature)")
	}
	var controlTar []byte
	if p.control, controlTar, p.data, err = nextMember(rest, maxControl); err != nil {
		return nil, fmt.Errorf("control member: %w", err)
	}
	if len(p.data) == 0 {
		return nil, errors.New("data member: missing (file truncated after the control member)")
	}
	if p.info, p.scripts, err = readControl(controlTar); err != nil {
		return nil, fmt.Errorf("control member: %w", err)
	}
	c, d := sha256.Sum256(p.control), sha256.Sum256(p.data)
	p.controlHash, p.dataHash = hex.EncodeToString(c[:]), hex.EncodeToString(d[:])
	return p, nil
}

// checkData compares the data member with the control member's datahash,
// which is what ties the files to the signature.
func (p *apkParts) checkData() error {
	want := p.info["datahash"]
	if len(want) != 1 {
		return errors.New("control member: .PKGINFO has no single datahash (an old-style package whose signature also covers the data; not supported)")
	}
	if p.dataHash != want[0] {
		return fmt.Errorf("data member: sha256 is %s, the signed .PKGINFO datahash says %s: the files were changed", p.dataHash, want[0])
	}
	return nil
}

func (p *apkParts) verified(signer string) *Verified {
	sum := sha1.Sum(p.control)
	return &Verified{
		Info:          p.info,
		Scripts:       p.scripts,
		Checksum:      "Q1" + base64.StdEncoding.EncodeToString(sum[:]),
		ControlSHA256: p.controlHash,
		DataSHA256:    p.dataHash,
		SignedBy:      signer,
		data:          p.data,
	}
}

// Verify checks an .apk v2 file against the index entry want and the
// trusted keys: the control member must have want's checksum and a valid
// signature by a trusted key, the data member must match the signed
// datahash, and .PKGINFO must name want's package, version and
// architecture. Every refusal names the package and what differs.
func Verify(apk []byte, want Package, keys Keyring) (*Verified, error) {
	v, err := verify(apk, want, keys)
	if err != nil {
		return nil, fmt.Errorf("verify %s: %w", want, err)
	}
	return v, nil
}

func verify(apk []byte, want Package, keys Keyring) (*Verified, error) {
	p, err := split(apk)
	if err != nil {
		return nil, err
	}
	v := p.verified("")
	if v.Checksum != want.Checksum {
		return nil, fmt.Errorf("control member: checksum is %s, the index says %s: this is not the package the index lists", v.Checksum, want.Checksum)
	}
	if v.SignedBy, err = keys.verify(p.sigs, p.control); err != nil {
		return nil, fmt.Errorf("control member: %w", err)
	}
	if err := p.checkData(); err != nil {
		return nil, err
	}
	for _, f := range []struct{ key, want string }{
		{"pkgname", want.Name}, {"pkgver", want.Version}, {"arch", want.Arch},
	} {
		if got := p.info[f.key]; len(got) != 1 || got[0] != f.want {
			return nil, fmt.Errorf("control member: .PKGINFO %s is %q, the index says %q", f.key, strings.Join(got, " "), f.want)
		}
	}
	if want.Size > 0 && int64(len(apk)) != want.Size {
		return nil, fmt.Errorf("file is %d bytes, the index says %d", len(apk), want.Size)
	}
	return v, nil
}

// VerifyDigests checks a package against digests recorded earlier (a lock
// entry's ControlSHA256 and DataSHA256, from a Verify at lock time), with
// no keys: the recorded digests pin both members, and the data member must
// still match its datahash. A build uses it to re-check a cached file.
func VerifyDigests(apk []byte, controlSHA256, dataSHA256 string) (*Verified, error) {
	p, err := split(apk)
	if err != nil {
		return nil, fmt.Errorf("verify package: %w", err)
	}
	name := strings.Join(p.info["pkgname"], " ") + "-" + strings.Join(p.info["pkgver"], " ")
	if p.controlHash != controlSHA256 {
		return nil, fmt.Errorf("verify %s: control member: sha256 is %s, the lock says %s", name, p.controlHash, controlSHA256)
	}
	if p.dataHash != dataSHA256 {
		return nil, fmt.Errorf("verify %s: data member: sha256 is %s, the lock says %s", name, p.dataHash, dataSHA256)
	}
	if err := p.checkData(); err != nil {
		return nil, fmt.Errorf("verify %s: %w", name, err)
	}
	return p.verified(""), nil
}

// nextMember decompresses the first gzip member of b, returning its
// compressed bytes, its content (at most limit bytes) and what follows it.
// gzip reads a bytes.Reader (an io.ByteReader) without reading ahead, so
// the reader's position after the member is the member's end.
func nextMember(b []byte, limit int64) (member, content, rest []byte, err error) {
	r := bytes.NewReader(b)
	zr, err := gzip.NewReader(r)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("not gzip: %w", err)
	}
	zr.Multistream(false)
	content, err = io.ReadAll(io.LimitReader(zr, limit+1))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("gzip: %w", err)
	}
	if int64(len(content)) > limit {
		return nil, nil, nil, fmt.Errorf("expands to more than %d bytes", limit)
	}
	n := len(b) - r.Len()
	return b[:n], content, b[n:], nil
}

// readSignatures reads a signature member: a tar segment whose entries are
// all ".SIGN.<alg>.<key name>" files holding raw signatures.
func readSignatures(segment []byte) ([]signature, error) {
	var sigs []signature
	tr := tar.NewReader(bytes.NewReader(segment))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("tar: %w", err)
		}
		if h.Name == ".PKGINFO" {
			return nil, errors.New("not signed (the first gzip member is the control member)")
		}
		alg, key, ok := strings.Cut(strings.TrimPrefix(h.Name, ".SIGN."), ".")
		if !strings.HasPrefix(h.Name, ".SIGN.") || !ok || key == "" || h.Typeflag != tar.TypeReg {
			return nil, fmt.Errorf("%q is not a .SIGN.<algorithm>.<key> file", h.Name)
		}
		sig, err := io.ReadAll(tr)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", h.Name, err)
		}
		sigs = append(sigs, signature{alg: alg, key: key, sig: sig})
	}
	if len(sigs) == 0 {
		return nil, errors.New("not signed (no .SIGN.* file)")
	}
	return sigs, nil
}

// readControl reads the control member's tar segment: .PKGINFO, parsed,
// and the other control files as they are.
func readControl(segment []byte) (map[string][]string, map[string][]byte, error) {
	var info map[string][]string
	scripts := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(segment))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, nil, fmt.Errorf("tar: %w", err)
		}
		if h.Typeflag != tar.TypeReg || !strings.HasPrefix(h.Name, ".") || strings.Contains(h.Name, "/") {
			return nil, nil, fmt.Errorf("%q is not a control file (.PKGINFO or a .script)", h.Name)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", h.Name, err)
		}
		if h.Name != ".PKGINFO" {
			scripts[h.Name] = b
			continue
		}
		if info, err = parsePkgInfo(b); err != nil {
			return nil, nil, err
		}
	}
	if info == nil {
		return nil, nil, errors.New("no .PKGINFO")
	}
	return info, scripts, nil
}

// parsePkgInfo reads "key = value" lines; '#' starts a comment line.
func parsePkgInfo(b []byte) (map[string][]string, error) {
	info := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64<<10), maxControl)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		k, v, ok := strings.Cut(line, " = ")
		if !ok || k == "" {
			return nil, fmt.Errorf(".PKGINFO line %d: %q is not a \"key = value\" line", n, line)
		}
		info[k] = append(info[k], v)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf(".PKGINFO: %w", err)
	}
	return info, nil
}
