package debiantest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// WriteMirror writes a Debian archive of debs under dir: each package at
// pool/main/<p>/<name>/<name>_<version>_<arch>.deb (version without
// epoch, as Debian names them), the index
// dists/<suite>/main/binary-<arch>/Packages with .gz and .xz copies, and
// an unsigned dists/<suite>/Release listing their sizes and sha256. A
// Deb without Arch gets arch. Calling it again for another suite adds to
// the same pool, as bookworm and bookworm-security share one; rewriting
// a suite removes its old signatures.
func WriteMirror(tb testing.TB, dir, suite, arch string, debs []Deb) {
	tb.Helper()
	if err := writeMirror(dir, suite, arch, debs); err != nil {
		tb.Fatalf("WriteMirror(%s, %s): %v", dir, suite, err)
	}
}

func writeMirror(dir, suite, arch string, debs []Deb) error {
	var index strings.Builder
	for i, d := range debs {
		if d.Arch == "" {
			d.Arch = arch
		}
		b, err := buildDeb(d)
		if err != nil {
			return fmt.Errorf("%s %s: %w", d.Name, d.Version, err)
		}
		name := poolPath(d)
		if err := writeFile(filepath.Join(dir, filepath.FromSlash(name)), b); err != nil {
			return err
		}
		if i > 0 {
			index.WriteString("\n")
		}
		sum := sha256.Sum256(b)
		fmt.Fprintf(&index, "%sFilename: %s\nSize: %d\nSHA256: %s\n",
			controlStanza(d, installedKiB(d)), name, len(b), hex.EncodeToString(sum[:]))
	}
	plain := []byte(index.String())
	compressed, err := xzip(plain)
	if err != nil {
		return err
	}
	dist := filepath.Join(dir, "dists", suite)
	packages := "main/binary-" + arch + "/Packages"
	var release bytes.Buffer
	fmt.Fprintf(&release, "Origin: yakimg-test\nLabel: yakimg-test\nSuite: %s\nCodename: %s\n", suite, suite)
	fmt.Fprintf(&release, "Date: Sat, 10 Jun 2023 00:00:00 UTC\nArchitectures: %s\nComponents: main\n", arch)
	release.WriteString("Description: yakimg test mirror\nSHA256:\n")
	for _, f := range []struct {
		name string
		data []byte
	}{{packages, plain}, {packages + ".gz", gz(plain)}, {packages + ".xz", compressed}} {
		if err := writeFile(filepath.Join(dist, filepath.FromSlash(f.name)), f.data); err != nil {
			return err
		}
		sum := sha256.Sum256(f.data)
		fmt.Fprintf(&release, " %x %16d %s\n", sum, len(f.data), f.name)
	}
	for _, stale := range []string{"InRelease", "Release.gpg"} {
		if err := os.Remove(filepath.Join(dist, stale)); err != nil && !os.IsNotExist(err) {
			return err
		}
	}
	return writeFile(filepath.Join(dist, "Release"), release.Bytes())
}

// poolPath is where Debian keeps a package: pool/main/h/hello/… for
// most, pool/main/libf/libfoo/… for libraries.
func poolPath(d Deb) string {
	prefix := d.Name[:1]
	if strings.HasPrefix(d.Name, "lib") && len(d.Name) > 3 {
		prefix = d.Name[:4]
	}
	version := d.Version
	if _, v, ok := strings.Cut(version, ":"); ok {
		version = v
	}
	return fmt.Sprintf("pool/main/%s/%s/%s_%s_%s.deb", prefix, d.Name, d.Name, version, d.Arch)
}

func writeFile(name string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		return err
	}
	return os.WriteFile(name, data, 0o644)
}

// Sign signs the Release that WriteMirror wrote for suite with a new
// throwaway key, writing dists/<suite>/InRelease (cleartext signature)
// and Release.gpg (detached), and returns a keyring file holding only
// that key's public part, as gpgv and apt's Signed-By want. Each call
// makes a different key. It skips the test when gpg is missing.
func Sign(tb testing.TB, dir, suite string) (keyring string) {
	tb.Helper()
	if _, err := exec.LookPath("gpg"); err != nil {
		tb.Skip("needs gpg to sign a test mirror: ", err)
	}
	home := tb.TempDir()
	env := append(os.Environ(), "GNUPGHOME="+home, "LC_ALL=C")
	gpg := func(args ...string) {
		tb.Helper()
		cmd := exec.Command("gpg", append([]string{"--batch", "--yes", "--pinentry-mode", "loopback", "--passphrase", ""}, args...)...)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			tb.Fatalf("gpg %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	// gpg starts an agent for the key; stop it with its home.
	tb.Cleanup(func() {
		cmd := exec.Command("gpgconf", "--kill", "gpg-agent")
		cmd.Env = env
		cmd.Run() // nothing to stop if no agent started
	})
	gpg("--quick-gen-key", "yakimg test mirror <tests@yakimg.invalid>", "ed25519", "sign", "never")
	dist := filepath.Join(dir, "dists", suite)
	release := filepath.Join(dist, "Release")
	gpg("--clearsign", "--output", filepath.Join(dist, "InRelease"), release)
	gpg("--armor", "--detach-sign", "--output", filepath.Join(dist, "Release.gpg"), release)
	keyring = filepath.Join(tb.TempDir(), "keyring.gpg")
	gpg("--output", keyring, "--export")
	return keyring
}
