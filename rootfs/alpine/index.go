package alpine

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Package is one stanza of an APKINDEX: a package the mirror offers.
type Package struct {
	Name     string // P:
	Version  string // V:
	Arch     string // A: an architecture such as "x86_64", or "noarch"
	Checksum string // C: "Q1" + base64(SHA-1 of the package's control member)

	Size          int64 // S: size of the .apk file
	InstalledSize int64 // I:

	Description string // T:
	URL         string // U:
	License     string // L:
	Origin      string // o: the source package (aport) it was built from
	Maintainer  string // m:
	BuildTime   int64  // t: seconds since the epoch
	Commit      string // c: aports commit

	// Depends are "[!]name[op version]" entries (D:), Provides "name" or
	// "name=version" entries (p:), InstallIf the conditions under which
	// apk installs the package by itself (i:).
	Depends, Provides, InstallIf []string
	// ProviderPriority (k:) ranks packages that provide the same name.
	ProviderPriority int
}

// String names the package the way apk and its file names do.
func (p Package) String() string { return p.Name + "-" + p.Version }

// Limits on what an index may expand to; Alpine's largest (community) is
// about 10 MiB of text.
const (
	maxIndexText    = 256 << 20
	maxSignatureLen = 1 << 20
)

// ReadIndex verifies and parses an APKINDEX.tar.gz: a gzip member holding
// the signature (".SIGN.RSA.<key>", ".SIGN.RSA256.<key>" or
// ".SIGN.RSA512.<key>", PKCS#1 v1.5 over every byte that follows the
// member), then the gzip'd tar with DESCRIPTION and APKINDEX. keys decides
// which signers are trusted.
func ReadIndex(b []byte, keys Keyring) ([]Package, error) {
	sigMember, sigTar, rest, err := nextMember(b, maxSignatureLen)
	if err != nil {
		return nil, fmt.Errorf("APKINDEX: signature member: %w", err)
	}
	sigs, err := readSignatures(sigTar)
	if err != nil {
		return nil, fmt.Errorf("APKINDEX: signature member: %w", err)
	}
	if len(rest) == 0 {
		return nil, fmt.Errorf("APKINDEX: nothing after the signature member (%d bytes): truncated?", len(sigMember))
	}
	if _, err := keys.verify(sigs, rest); err != nil {
		return nil, fmt.Errorf("APKINDEX: %w", err)
	}
	text, err := indexText(rest)
	if err != nil {
		return nil, fmt.Errorf("APKINDEX: %w", err)
	}
	pkgs, err := ParseIndex(bytes.NewReader(text))
	if err != nil {
		return nil, fmt.Errorf("APKINDEX: %w", err)
	}
	return pkgs, nil
}

// indexText returns the APKINDEX file of the signed (gzip'd tar) part.
func indexText(signed []byte) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(signed))
	if err != nil {
		return nil, fmt.Errorf("index member: %w", err)
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil, errors.New("index member has no APKINDEX file")
		}
		if err != nil {
			return nil, fmt.Errorf("index member: %w", err)
		}
		if strings.TrimPrefix(h.Name, "./") != "APKINDEX" || h.Typeflag != tar.TypeReg {
			continue
		}
		text, err := io.ReadAll(io.LimitReader(tr, maxIndexText+1))
		if err != nil {
			return nil, fmt.Errorf("index member: APKINDEX: %w", err)
		}
		if len(text) > maxIndexText {
			return nil, fmt.Errorf("index member: APKINDEX is larger than %d bytes", maxIndexText)
		}
		return text, nil
	}
}

// ParseIndex reads the text of an APKINDEX: one stanza per package,
// stanzas separated by blank lines, each line "X:value" with a one-letter
// field X. P, V, A and C are required; versions, dependencies and provides
// must be well-formed. Unknown fields are ignored, as apk does.
func ParseIndex(r io.Reader) ([]Package, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	var (
		pkgs   []Package
		cur    Package
		seen   = map[byte]bool{}
		start  int
		lineNo int
	)
	flush := func() error {
		if len(seen) == 0 {
			return nil
		}
		if err := checkStanza(cur, seen); err != nil {
			return fmt.Errorf("stanza at line %d: %w", start, err)
		}
		pkgs = append(pkgs, cur)
		cur, seen = Package{}, map[byte]bool{}
		return nil
	}
	for sc.Scan() {
		lineNo++
		line := sc.Text()
		if line == "" {
			if err := flush(); err != nil {
				return nil, err
			}
			continue
		}
		if len(line) < 2 || line[1] != ':' {
			return nil, fmt.Errorf("line %d: %q is not an \"X:value\" line", lineNo, line)
		}
		if len(seen) == 0 {
			start = lineNo
		}
		k, v := line[0], line[2:]
		if seen[k] {
			return nil, fmt.Errorf("line %d: field %c: repeated in one stanza", lineNo, k)
		}
		seen[k] = true
		if err := setField(&cur, k, v); err != nil {
			return nil, fmt.Errorf("line %d: field %c: %w", lineNo, k, err)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("line %d: %w", lineNo+1, err)
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return pkgs, nil
}

func setField(p *Package, k byte, v string) error {
	var err error
	switch k {
	case 'P':
		p.Name = v
	case 'V':
		p.Version = v
	case 'A':
		p.Arch = v
	case 'C':
		p.Checksum = v
	case 'S':
		p.Size, err = parseSize(v)
	case 'I':
		p.InstalledSize, err = parseSize(v)
	case 'T':
		p.Description = v
	case 'U':
		p.URL = v
	case 'L':
		p.License = v
	case 'o':
		p.Origin = v
	case 'm':
		p.Maintainer = v
	case 't':
		p.BuildTime, err = parseSize(v)
	case 'c':
		p.Commit = v
	case 'k':
		p.ProviderPriority, err = strconv.Atoi(v)
	case 'D':
		p.Depends = strings.Fields(v)
		err = checkEach(p.Depends, func(s string) error { _, err := parseDep(s); return err })
	case 'p':
		p.Provides = strings.Fields(v)
		err = checkEach(p.Provides, func(s string) error { _, _, err := parseProvide(s); return err })
	case 'i':
		p.InstallIf = strings.Fields(v)
		err = checkEach(p.InstallIf, func(s string) error { _, err := parseDep(s); return err })
	}
	return err
}

func parseSize(v string) (int64, error) {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q is not a non-negative number", v)
	}
	return n, nil
}

func checkEach(items []string, check func(string) error) error {
	for _, s := range items {
		if err := check(s); err != nil {
			return err
		}
	}
	return nil
}

func checkStanza(p Package, seen map[byte]bool) error {
	var missing []string
	for _, k := range "PVAC" {
		if !seen[byte(k)] {
			missing = append(missing, string(k))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("package %q: missing field %s", p.Name, strings.Join(missing, ", "))
	}
	if err := checkName(p.Name); err != nil {
		return fmt.Errorf("package %q: %w", p.Name, err)
	}
	if err := CheckVersion(p.Version); err != nil {
		return fmt.Errorf("package %s: %w", p.Name, err)
	}
	if p.Arch == "" {
		return fmt.Errorf("package %s: empty architecture", p)
	}
	if err := checkChecksum(p.Checksum); err != nil {
		return fmt.Errorf("package %s: %w", p, err)
	}
	return nil
}

// checkChecksum accepts the only identity apk v2 indexes use: "Q1" and the
// base64 SHA-1 of the control member.
func checkChecksum(c string) error {
	b64, ok := strings.CutPrefix(c, "Q1")
	if raw, err := base64.StdEncoding.DecodeString(b64); !ok || err != nil || len(raw) != 20 {
		return fmt.Errorf("checksum %q is not \"Q1\" and a base64 SHA-1", c)
	}
	return nil
}
