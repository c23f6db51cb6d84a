package debian

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

// HostIndex returns the packages of every Packages index for arch that
// this host's apt has downloaded (all configured suites, e.g. bookworm,
// bookworm-updates and bookworm-security), concatenated. apt checked
// their signatures when it downloaded them; HostIndex trusts apt.
//
// The files are the ones "apt-get indextargets" names; without apt-get
// they are found in /var/lib/apt/lists. They may be plain or compressed
// with gzip, xz, lz4 or zstd.
func HostIndex(ctx context.Context, arch string) ([]Package, error) {
	paths, err := hostIndexFiles(ctx, arch)
	if err != nil {
		return nil, err
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("host apt has no Packages index for %s (run apt-get update)", arch)
	}
	var all []Package
	for _, p := range paths {
		pkgs, err := readIndexFile(p)
		if err != nil {
			return nil, err
		}
		all = append(all, pkgs...)
	}
	return all, nil
}

// listsDir is where apt keeps downloaded indexes, for hosts without
// apt-get on PATH.
const listsDir = "/var/lib/apt/lists"

// hostIndexFiles returns the paths of the host's Packages indexes for
// arch, sorted; none is not an error here.
func hostIndexFiles(ctx context.Context, arch string) ([]string, error) {
	if !validArch(arch) || arch == "any" || arch == "native" {
		return nil, fmt.Errorf("host index: %q is not an architecture name", arch)
	}
	var paths []string
	if apt, err := exec.LookPath("apt-get"); err == nil {
		cmd := exec.CommandContext(ctx, apt, "indextargets", "--format", "$(FILENAME)",
			"Identifier: Packages", "Architecture: "+arch)
		cmd.Env = append(os.Environ(), "LC_ALL=C")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return nil, fmt.Errorf("apt-get indextargets: %w: %s", err, strings.TrimSpace(stderr.String()))
		}
		for _, l := range strings.Split(string(out), "\n") {
			if l != "" {
				paths = append(paths, l)
			}
		}
	} else {
		for _, ext := range []string{"", ".gz", ".xz", ".lz4", ".zst"} {
			m, err := filepath.Glob(filepath.Join(listsDir, "*_binary-"+arch+"_Packages"+ext))
			if err != nil {
				return nil, fmt.Errorf("host index: %w", err)
			}
			paths = append(paths, m...)
		}
	}
	slices.Sort(paths)
	return paths, nil
}

// readIndexFile parses one of the host's (possibly compressed) indexes.
func readIndexFile(p string) ([]Package, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("host index: %w", err)
	}
	defer f.Close()
	pkgs, err := parseCompressed(p, f)
	if err != nil {
		return nil, fmt.Errorf("host index: %w", err)
	}
	return pkgs, nil
}
