// Package archive packs a built image into one self-contained file and
// checks and unpacks such a file.
//
// # Format
//
// An archive is an uncompressed POSIX (ustar) tar: the artifacts are
// already compressed (vmlinuz, initramfs.cpio.zst) or mostly zeros that a
// transport compresses well (disk.img), and plain tar keeps the file
// simple and byte-for-byte deterministic. It holds exactly these regular
// files, in this order (metadata first, so a reader learns the expected
// digests before the large members stream past):
//
//	manifest.json       the image's manifest, as the build wrote it
//	yakimg.lock         the project's lock at archive time; its digest must be the manifest's lock_digest
//	sbom.spdx.json      SPDX 2.3 JSON, derived from the manifest alone (see SBOM)
//	vmlinuz             \
//	initramfs.cpio.zst   | the artifacts; each must hash to the manifest's outputs
//	boot.json            |
//	disk.img            /  (written in full, holes included)
//
// Every header has mode 0644, uid and gid 0, no user or group names and
// mtime = the manifest's source_date_epoch, so archiving the same image
// twice gives the same bytes. No other member, no directory and no path
// containing '/' is allowed: readers refuse them.
package archive

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"yakimg/builder"
	"yakimg/rootfs"
	"yakimg/vm"
)

// Member names besides the artifacts.
const (
	LockMember = builder.LockFile
	SBOMMember = "sbom.spdx.json"
)

// Members are the members of an archive, in archive order.
var Members = []string{builder.ManifestFile, LockMember, SBOMMember, builder.KernelFile, builder.InitramfsFile, vm.BootSpecFile, builder.DiskFile}

// artifacts are the members whose digests the manifest's outputs record.
var artifacts = Members[3:]

// maxMetadata bounds the members held in memory (manifest, lock, SBOM), so
// a hostile archive cannot make a reader allocate without limit.
const maxMetadata = 16 << 20

// Create writes the image in dir as an archive to w, with lock (the
// content of yakimg.lock) beside it. It refuses an image whose artifacts do
// not hash to its manifest, and a lock whose digest is not the manifest's
// lock_digest. Artifacts are streamed, never held in memory.
func Create(w io.Writer, dir string, lock []byte) error {
	manifestData, err := os.ReadFile(filepath.Join(dir, builder.ManifestFile))
	if err != nil {
		return fmt.Errorf("%s is not an image: %w", dir, err)
	}
	m, err := parseManifest(manifestData)
	if err != nil {
		return fmt.Errorf("%s: %w", filepath.Join(dir, builder.ManifestFile), err)
	}
	if d, err := lockDigest(lock); err != nil {
		return err
	} else if d != m.LockDigest {
		return fmt.Errorf("%s digest %s is not the image's lock_digest %s; archive the image with the lock it was built from", LockMember, d, m.LockDigest)
	}
	outputs, err := outputsOf(m)
	if err != nil {
		return err
	}
	sbom, err := SBOM(m)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	mtime := time.Unix(m.SourceDateEpoch, 0)
	for _, f := range []struct {
		name string
		data []byte
	}{{builder.ManifestFile, manifestData}, {LockMember, lock}, {SBOMMember, sbom}} {
		if err := tw.WriteHeader(header(f.name, int64(len(f.data)), mtime)); err != nil {
			return err
		}
		if _, err := tw.Write(f.data); err != nil {
			return fmt.Errorf("archive %s: %w", f.name, err)
		}
	}
	for _, name := range artifacts {
		if err := addArtifact(tw, filepath.Join(dir, name), outputs[name], mtime); err != nil {
			return err
		}
	}
	return tw.Close()
}

// addArtifact streams one artifact into tw, hashing it on the way; a file
// that differs from its manifest entry fails the whole archive.
func addArtifact(tw *tar.Writer, path string, want builder.Output, mtime time.Time) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("image is incomplete: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if fi.Size() != want.Size {
		return fmt.Errorf("%s is %d bytes, its manifest says %d (changed after the build)", path, fi.Size(), want.Size)
	}
	if err := tw.WriteHeader(header(want.Name, want.Size, mtime)); err != nil {
		return err
	}
	h := sha256.New()
	if _, err := io.Copy(tw, io.TeeReader(f, h)); err != nil {
		return fmt.Errorf("archive %s: %w", path, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want.SHA256 {
		return fmt.Errorf("%s is sha256:%s, its manifest says sha256:%s (changed after the build)", path, got, want.SHA256)
	}
	return nil
}

func header(name string, size int64, mtime time.Time) *tar.Header {
	return &tar.Header{
		Typeflag: tar.TypeReg,
		Name:     name,
		Mode:     0o644,
		Size:     size,
		ModTime:  mtime,
		Format:   tar.FormatUSTAR,
	}
}

// outputsOf indexes the manifest's outputs by name, demanding exactly the
// artifacts an archive carries.
func outputsOf(m *builder.Manifest) (map[string]builder.Output, error) {
	out := map[string]builder.Output{}
	for _, o := range m.Outputs {
		if !isArtifact(o.Name) {
			return nil, fmt.Errorf("manifest lists output %q, which an archive cannot carry", o.Name)
		}
		out[o.Name] = o
	}
	for _, name := range artifacts {
		if _, ok := out[name]; !ok {
			return nil, fmt.Errorf("manifest lists no output %s", name)
		}
	}
	return out, nil
}

func isArtifact(name string) bool {
	for _, a := range artifacts {
		if a == name {
			return true
		}
	}
	return false
}

func parseManifest(data []byte) (*builder.Manifest, error) {
	var m builder.Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("parse manifest: %w", err)
	}
	if m.Format != builder.ManifestFormat {
		return nil, fmt.Errorf("manifest format %d, want %d", m.Format, builder.ManifestFormat)
	}
	return &m, nil
}

// lockDigest is the digest yakimg.lock content has in a manifest.
func lockDigest(data []byte) (string, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var l rootfs.Lock
	if err := dec.Decode(&l); err != nil {
		return "", fmt.Errorf("parse %s: %w", LockMember, err)
	}
	return l.Digest(), nil
}

// CorruptError lists everything wrong with an archive, one problem each.
type CorruptError struct {
	Problems []string
}

func (e *CorruptError) Error() string {
	return "corrupt archive: " + strings.Join(e.Problems, "; ")
}

// Verify reads a whole archive and checks every member against the
// manifest inside: artifact sizes and digests, the lock digest, the SBOM
// (parseable, and the one the manifest gives), no member missing,
// duplicated or unexpected. A bad archive gives a *CorruptError.
func Verify(r io.Reader) (*builder.Manifest, error) {
	return scan(r, func(string) (io.WriteCloser, error) { return nil, nil })
}

// Extract verifies the archive read from r while writing its members into
// the existing directory dir, leaving holes where they hold zero blocks
// (most of a disk image). On a *CorruptError the files written so far stay
// in dir; the caller owns dir and removes it.
func Extract(r io.Reader, dir string) (*builder.Manifest, error) {
	return scan(r, func(name string) (io.WriteCloser, error) {
		f, err := os.OpenFile(filepath.Join(dir, name), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err != nil {
			return nil, err
		}
		return &sparseFile{f: f}, nil
	})
}

const sparseBlock = 4096

var zeroBlock [sparseBlock]byte

// sparseFile writes a file sequentially, skipping whole zero blocks
// (aligned to the file offset) so they stay holes; Close sets the size.
type sparseFile struct {
	f   *os.File
	off int64
}

func (s *sparseFile) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		n := min(len(p), sparseBlock-int(s.off%sparseBlock))
		if n < sparseBlock || !bytes.Equal(p[:n], zeroBlock[:]) {
			if _, err := s.f.WriteAt(p[:n], s.off); err != nil {
				return written, err
			}
		}
		s.off += int64(n)
		written += n
		p = p[n:]
	}
	return written, nil
}

func (s *sparseFile) Close() error {
	err := s.f.Truncate(s.off)
	if cerr := s.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// member is what scan learned of one member.
type member struct {
	size   int64
	sha256 string
	data   []byte // metadata members only
	// truncated members are already reported; check skips them.
	truncated bool
}

// scan reads every member, hands it to the writer open returns (nil: the
// content is only hashed) and then checks the lot. Reading problems are
// corruption; only open's and the writers' errors are returned as such.
func scan(r io.Reader, open func(name string) (io.WriteCloser, error)) (*builder.Manifest, error) {
	var problems []string
	seen := map[string]member{}
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			problems = append(problems, fmt.Sprintf("archive is truncated or not a tar: %v", err))
			break
		}
		name := hdr.Name
		switch {
		case strings.Contains(name, "/") || strings.Contains(name, ".."):
			problems = append(problems, fmt.Sprintf("%q: unsafe member path", name))
			continue
		case !known(name):
			problems = append(problems, fmt.Sprintf("%s: unexpected member", name))
			continue
		case hdr.Typeflag != tar.TypeReg:
			problems = append(problems, fmt.Sprintf("%s: not a regular file (tar type %q)", name, hdr.Typeflag))
			continue
		}
		if _, dup := seen[name]; dup {
			problems = append(problems, fmt.Sprintf("%s: appears twice", name))
			continue
		}
		mem, err := readMember(tr, name, hdr.Size, open)
		if errors.Is(err, errWrite) {
			return nil, err
		}
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: truncated: %v", name, err))
			seen[name] = member{truncated: true} // reported: neither missing nor mismatched
			break                                // the stream is unusable past a short member
		}
		seen[name] = mem
	}
	m, more := check(seen)
	problems = append(problems, more...)
	if len(problems) > 0 {
		return nil, &CorruptError{Problems: problems}
	}
	return m, nil
}

var errWrite = errors.New("write member")

func known(name string) bool {
	for _, m := range Members {
		if m == name {
			return true
		}
	}
	return false
}

func readMember(tr *tar.Reader, name string, size int64, open func(string) (io.WriteCloser, error)) (member, error) {
	h := sha256.New()
	w := io.Writer(h)
	var buf *bytes.Buffer
	if !isArtifact(name) {
		if size > maxMetadata {
			return member{}, fmt.Errorf("%d bytes, more than a %s can be", size, name)
		}
		buf = &bytes.Buffer{}
		w = io.MultiWriter(h, buf)
	}
	f, err := open(name)
	if err != nil {
		return member{}, fmt.Errorf("%w %s: %w", errWrite, name, err)
	}
	var n int64
	if f != nil {
		fw := &errTag{w: f}
		n, err = io.Copy(io.MultiWriter(w, fw), tr)
		if cerr := f.Close(); fw.err == nil && cerr != nil {
			fw.err = cerr
		}
		if fw.err != nil {
			return member{}, fmt.Errorf("%w %s: %w", errWrite, name, fw.err)
		}
	} else {
		n, err = io.Copy(w, tr)
	}
	if err != nil {
		return member{}, fmt.Errorf("read: %w", err)
	}
	mem := member{size: n, sha256: hex.EncodeToString(h.Sum(nil))}
	if buf != nil {
		mem.data = buf.Bytes()
	}
	return mem, nil
}

// errTag remembers a destination's write error, so it is not mistaken for
// a corrupt archive.
type errTag struct {
	w   io.Writer
	err error
}

func (t *errTag) Write(p []byte) (int, error) {
	n, err := t.w.Write(p)
	if err != nil && t.err == nil {
		t.err = err
	}
	return n, err
}

// check compares the members read against the manifest among them.
func check(seen map[string]member) (*builder.Manifest, []string) {
	var problems []string
	for _, name := range Members {
		if _, ok := seen[name]; !ok {
			problems = append(problems, name+": missing")
		}
	}
	mf, ok := seen[builder.ManifestFile]
	if !ok || mf.truncated {
		return nil, problems
	}
	m, err := parseManifest(mf.data)
	if err != nil {
		return nil, append(problems, builder.ManifestFile+": "+err.Error())
	}
	if l, ok := seen[LockMember]; ok && !l.truncated {
		if d, err := lockDigest(l.data); err != nil {
			problems = append(problems, LockMember+": "+err.Error())
		} else if d != m.LockDigest {
			problems = append(problems, fmt.Sprintf("%s: digest %s, the manifest's lock_digest is %s", LockMember, d, m.LockDigest))
		}
	}
	if s, ok := seen[SBOMMember]; ok && !s.truncated {
		problems = append(problems, checkSBOM(m, s.data)...)
	}
	outputs, err := outputsOf(m)
	if err != nil {
		return nil, append(problems, builder.ManifestFile+": "+err.Error())
	}
	for _, name := range artifacts {
		got, ok := seen[name]
		want := outputs[name]
		switch {
		case !ok || got.truncated:
		case got.size != want.Size:
			problems = append(problems, fmt.Sprintf("%s: %d bytes, the manifest says %d", name, got.size, want.Size))
		case got.sha256 != want.SHA256:
			problems = append(problems, fmt.Sprintf("%s: sha256:%s, the manifest says sha256:%s", name, got.sha256, want.SHA256))
		}
	}
	if len(problems) > 0 {
		return nil, problems
	}
	return m, nil
}

func checkSBOM(m *builder.Manifest, data []byte) []string {
	var doc spdxDocument
	if err := json.Unmarshal(data, &doc); err != nil {
		return []string{SBOMMember + ": parse: " + err.Error()}
	}
	if doc.SPDXVersion != spdxVersion {
		return []string{fmt.Sprintf("%s: spdxVersion %q, want %q", SBOMMember, doc.SPDXVersion, spdxVersion)}
	}
	want, err := SBOM(m)
	if err != nil {
		return []string{SBOMMember + ": " + err.Error()}
	}
	if !bytes.Equal(data, want) {
		return []string{SBOMMember + ": does not describe the manifest's packages (edited after archiving)"}
	}
	return nil
}
