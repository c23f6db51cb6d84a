package debian

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"strings"

	"yakimg/internal/download"
)

// Mirror is one suite of a Debian archive. Several suites (bookworm and
// bookworm-security, say) are several Mirrors; their indexes concatenate.
type Mirror struct {
	// URL is the archive root, the directory holding dists/ and pool/: a
	// directory path, a file:// URL or an http(s):// URL.
	URL string
	// Suite names the directory under dists/, e.g. "bookworm".
	Suite string
	// Components are read in order, e.g. ["main"].
	Components []string
	// Arch is the architecture of the indexes read, e.g. "amd64".
	Arch string
	// Keyring is a binary OpenPGP keyring (as
	// /usr/share/keyrings/debian-archive-keyring.gpg) that must have
	// signed the suite's Release. Empty means the Release is trusted
	// unsigned: then only the transport and, for yakimg, the lockfile,
	// which pins every package's sha256, protect what is read.
	Keyring string
}

// Limits against a mirror that sends without end; Debian's bookworm
// InRelease is 150 KB.
const (
	maxRelease   = 16 << 20
	maxSignature = 1 << 20
)

// Index returns the packages of the suite's Packages index for each
// component, in component order.
//
// It reads dists/<Suite>/InRelease, or Release and Release.gpg when there
// is no InRelease, verifies the signature when Keyring is set (see
// Keyring), and refuses a Release whose Suite and Codename both differ
// from Suite. For each component it takes the first of Packages.xz,
// Packages.gz and Packages that the Release lists and the mirror serves,
// and refuses it unless its size and sha256 are those the Release gives.
// Release dates (Valid-Until) are not checked: builds must not depend on
// the clock.
func (m Mirror) Index(ctx context.Context) ([]Package, error) {
	if m.Suite == "" || len(m.Components) == 0 || !validArch(m.Arch) {
		return nil, fmt.Errorf("mirror %s: need a suite, components and an architecture (have %q, %q, %q)",
			m.URL, m.Suite, m.Components, m.Arch)
	}
	rel, err := m.release(ctx)
	if err != nil {
		return nil, fmt.Errorf("mirror %s suite %s: %w", m.URL, m.Suite, err)
	}
	var all []Package
	for _, c := range m.Components {
		pkgs, err := m.component(ctx, rel, c)
		if err != nil {
			return nil, fmt.Errorf("mirror %s suite %s: %w", m.URL, m.Suite, err)
		}
		all = append(all, pkgs...)
	}
	return all, nil
}

func (m Mirror) dist(name string) string { return "dists/" + m.Suite + "/" + name }

// release reads, verifies and parses the suite's Release.
func (m Mirror) release(ctx context.Context) (release, error) {
	var text []byte
	name := m.dist("InRelease")
	in, inErr := download.ReadAll(ctx, m.URL, name, maxRelease)
	switch {
	case inErr == nil && m.Keyring != "":
		t, err := verifySignature(ctx, m.Keyring, in, nil)
		if err != nil {
			return release{}, fmt.Errorf("%s: %w", name, err)
		}
		text = t
	case inErr == nil:
		t, err := clearsignedText(in)
		if err != nil {
			return release{}, fmt.Errorf("%s: %w", name, err)
		}
		text = t
	default:
		name = m.dist("Release")
		plain, err := download.ReadAll(ctx, m.URL, name, maxRelease)
		if err != nil {
			return release{}, fmt.Errorf("no InRelease (%v) and no Release (%w)", inErr, err)
		}
		if m.Keyring != "" {
			sig, err := download.ReadAll(ctx, m.URL, m.dist("Release.gpg"), maxSignature)
			if err != nil {
				return release{}, fmt.Errorf("unsigned Release: no InRelease (%v) and no Release.gpg (%w)", inErr, err)
			}
			if _, err := verifySignature(ctx, m.Keyring, plain, sig); err != nil {
				return release{}, fmt.Errorf("%s: %w", name, err)
			}
		}
		text = plain
	}
	rel, err := parseRelease(text)
	if err != nil {
		return rel, fmt.Errorf("%s: %w", name, err)
	}
	if (rel.suite != "" || rel.codename != "") && rel.suite != m.Suite && rel.codename != m.Suite {
		return rel, fmt.Errorf("%s: is for suite %q, codename %q, not %q", name, rel.suite, rel.codename, m.Suite)
	}
	return rel, nil
}

// component reads and verifies one component's Packages index.
func (m Mirror) component(ctx context.Context, rel release, comp string) ([]Package, error) {
	base := comp + "/binary-" + m.Arch + "/Packages"
	var unavailable []string
	for _, ext := range []string{".xz", ".gz", ""} {
		name := base + ext
		sum, ok := rel.files[name]
		if !ok {
			continue
		}
		r, err := download.Open(ctx, m.URL, m.dist(name))
		if err != nil {
			// Release lists files a mirror need not carry (Debian has no
			// plain Packages), so try the next.
			unavailable = append(unavailable, err.Error())
			continue
		}
		var b bytes.Buffer
		err = copyVerified(&b, r, m.dist(name), sum.size, sum.sha256)
		r.Close()
		if err != nil {
			return nil, fmt.Errorf("%w (from Release)", err)
		}
		return parseCompressed(name, &b)
	}
	if len(unavailable) == 0 {
		return nil, fmt.Errorf("component %s: Release lists no %s, .gz or .xz", comp, base)
	}
	return nil, fmt.Errorf("component %s: the mirror serves none of the indexes Release lists: %s",
		comp, strings.Join(unavailable, "; "))
}

// FetchPackage streams the package file p.Filename from the mirror into
// w, refusing it unless it has exactly p.Size bytes and sha256 p.SHA256
// (from the index or, for yakimg, the lock). The check ends the stream,
// so on error w has received unverified bytes: give it a temporary file
// that is kept only on success.
func (m Mirror) FetchPackage(ctx context.Context, p Package, w io.Writer) error {
	if p.Filename == "" || p.Size <= 0 || p.SHA256 == "" {
		return fmt.Errorf("fetch %s %s: need Filename, Size and SHA256 (have %q, %d, %q)",
			p.Name, p.Version, p.Filename, p.Size, p.SHA256)
	}
	r, err := download.Open(ctx, m.URL, p.Filename)
	if err != nil {
		return fmt.Errorf("fetch %s %s: %w", p.Name, p.Version, err)
	}
	defer r.Close()
	if err := copyVerified(w, r, p.Filename, p.Size, p.SHA256); err != nil {
		return fmt.Errorf("fetch %s %s from %s: %w", p.Name, p.Version, m.URL, err)
	}
	return nil
}

// copyVerified copies r to w and fails unless exactly size bytes with
// the given sha256 came; name is the file, for messages. It reads at
// most one byte past size.
func copyVerified(w io.Writer, r io.Reader, name string, size int64, sum string) error {
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(w, h), io.LimitReader(r, size+1))
	if err != nil {
		return fmt.Errorf("read %s: %w", name, err)
	}
	if n > size {
		return fmt.Errorf("%s: more than the expected %d bytes", name, size)
	}
	if n != size {
		return fmt.Errorf("%s: got %d bytes, expected %d", name, n, size)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != sum {
		return fmt.Errorf("%s: got sha256 %s, expected %s", name, got, sum)
	}
	return nil
}
