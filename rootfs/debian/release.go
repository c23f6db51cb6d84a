package debian

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// release is what Index needs from a suite's Release file.
type release struct {
	suite, codename string
	// files maps a path relative to dists/<suite>/ to its SHA256 entry.
	files map[string]fileSum
}

type fileSum struct {
	size   int64
	sha256 string
}

// parseRelease reads the single deb822 stanza of a Release file. Only
// Suite, Codename and the SHA256 section are kept; MD5Sum and SHA1 are
// too weak to check against. A repeated field or path is refused, so two
// concatenated Release texts cannot smuggle in a second SHA256 section.
func parseRelease(text []byte) (release, error) {
	rel := release{files: map[string]fileSum{}}
	seen := map[string]bool{}
	field, ended := "", false
	for i, line := range strings.Split(string(text), "\n") {
		n := i + 1
		switch {
		case strings.TrimSpace(line) == "":
			ended = len(seen) > 0
		case ended:
			return rel, fmt.Errorf("line %d: a second stanza", n)
		case line[0] == ' ' || line[0] == '\t':
			if field == "" {
				return rel, fmt.Errorf("line %d: continuation line before any field", n)
			}
			if field != "sha256" {
				continue
			}
			f := strings.Fields(line)
			if len(f) != 3 || !isHex64(f[0]) {
				return rel, fmt.Errorf("line %d: %q is not \"<sha256> <size> <path>\"", n, strings.TrimSpace(line))
			}
			size, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil || size < 0 {
				return rel, fmt.Errorf("line %d: size %q is not a byte count", n, f[1])
			}
			if _, dup := rel.files[f[2]]; dup {
				return rel, fmt.Errorf("line %d: %s listed twice", n, f[2])
			}
			rel.files[f[2]] = fileSum{size, f[0]}
		default:
			k, v, ok := strings.Cut(line, ":")
			if !ok || k == "" || strings.ContainsAny(k, " \t") {
				return rel, fmt.Errorf("line %d: %q is not a \"Field: value\" line", n, line)
			}
			field = strings.ToLower(k)
			if seen[field] {
				return rel, fmt.Errorf("line %d: duplicate field %q", n, k)
			}
			seen[field] = true
			switch field {
			case "suite":
				rel.suite = strings.TrimSpace(v)
			case "codename":
				rel.codename = strings.TrimSpace(v)
			}
		}
	}
	if len(rel.files) == 0 {
		return rel, fmt.Errorf("no SHA256 section")
	}
	return rel, nil
}

const (
	beginSigned    = "-----BEGIN PGP SIGNED MESSAGE-----"
	beginSignature = "-----BEGIN PGP SIGNATURE-----"
)

// clearsignedText returns the text of an OpenPGP cleartext-signed message
// (RFC 4880 §7) without checking the signature: the armor headers are
// skipped and dash-escaping undone. It is for unverified mirrors only;
// with a keyring the text must come from gpgv, which ignores whatever an
// attacker adds around the signed part.
func clearsignedText(b []byte) ([]byte, error) {
	lines := strings.Split(string(b), "\n")
	if strings.TrimRight(lines[0], " \t\r") != beginSigned {
		return nil, fmt.Errorf("not a cleartext-signed message")
	}
	i := 1
	for i < len(lines) && strings.TrimSpace(lines[i]) != "" {
		i++ // armor headers ("Hash: SHA256")
	}
	var out strings.Builder
	for _, l := range lines[min(i+1, len(lines)):] {
		if strings.TrimRight(l, " \t\r") == beginSignature {
			return []byte(out.String()), nil
		}
		out.WriteString(strings.TrimPrefix(l, "- "))
		out.WriteByte('\n')
	}
	return nil, fmt.Errorf("no signature block")
}

// verifySignature checks a Release signature with gpgv against keyring.
// With sig nil, signed is an InRelease and the result is the text gpgv
// vouches for; otherwise sig is Release.gpg, detached, and the result is
// signed itself.
//
// Like apt, it accepts a file with at least one good signature from a key
// in the keyring even when other signatures are by keys it lacks (Debian
// signs with several keys, and a keyring with just one of them is
// common), and refuses any bad signature. SHA-1 signatures are refused.
func verifySignature(ctx context.Context, keyring string, signed, sig []byte) ([]byte, error) {
	keyring, err := filepath.Abs(keyring) // gpgv looks up a bare name in its home
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	if _, err := os.Stat(keyring); err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	tmp, err := os.MkdirTemp("", "yakimg-gpgv-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	text := filepath.Join(tmp, "text")
	signedPath := filepath.Join(tmp, "Release")
	if err := os.WriteFile(signedPath, signed, 0o600); err != nil {
		return nil, err
	}
	args := []string{"--homedir", tmp, "--keyring", keyring, "--weak-digest", "sha1", "--status-fd", "1"}
	if sig == nil {
		args = append(args, "--output", text, signedPath)
	} else {
		sigPath := filepath.Join(tmp, "Release.gpg")
		if err := os.WriteFile(sigPath, sig, 0o600); err != nil {
			return nil, err
		}
		args = append(args, sigPath, signedPath)
	}
	cmd := exec.CommandContext(ctx, "gpgv", args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	status, runErr := cmd.Output()
	if cmd.ProcessState == nil { // gpgv did not start
		return nil, fmt.Errorf("gpgv: %w", runErr)
	}
	if !goodStatus(string(status), runErr == nil) {
		return nil, fmt.Errorf("signature not accepted with keyring %s: %s", keyring, gpgvReason(stderr.String()))
	}
	if sig != nil {
		return signed, nil
	}
	out, err := os.ReadFile(text)
	if err != nil {
		return nil, fmt.Errorf("gpgv output: %w", err)
	}
	return out, nil
}

// goodStatus applies apt's rule to gpgv's --status-fd lines: at least one
// valid signature, no bad one, and every signature that could not be
// checked failed only for want of its public key. gpgv exits non-zero
// (exited0 false) for such a missing key too, but for no other reason.
func goodStatus(status string, exited0 bool) bool {
	count := map[string]int{}
	for _, l := range strings.Split(status, "\n") {
		if f := strings.Fields(strings.TrimPrefix(l, "[GNUPG:] ")); len(f) > 0 {
			count[f[0]]++
		}
	}
	return count["VALIDSIG"] > 0 && count["BADSIG"] == 0 && count["ERRSIG"] == count["NO_PUBKEY"] &&
		(exited0 || count["NO_PUBKEY"] > 0)
}

// gpgvReason makes gpgv's messages one line, without the signature's
// date, which says nothing about why it was refused.
func gpgvReason(stderr string) string {
	var keep []string
	for _, l := range strings.Split(stderr, "\n") {
		l = strings.Join(strings.Fields(l), " ")
		if l != "" && !strings.HasPrefix(l, "gpgv: Signature made ") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "; ")
}
