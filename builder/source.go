package builder

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// sourceDirs are the parts of the project that reach the image. Tests and
// test data do not, so they are left out of the source digest.
var sourceDirs = []string{"cmd", "builder", "cli", "components", "initramfs", "internal", "rootfs", "suites", "testbins", "version", "vm", "yakiros"}

var sourceFiles = []string{"go.mod", "go.sum", ProjectFile, LockFile}

// SourceDigest hashes the names and contents of every file that reaches the
// image, in sorted order, so it is the same for any checkout of the same
// source wherever it lies and whatever its mtimes.
func SourceDigest(root string) (string, error) {
	var files []string
	for _, d := range sourceDirs {
		err := filepath.WalkDir(filepath.Join(root, d), func(p string, de fs.DirEntry, err error) error {
			if err != nil {
				if os.IsNotExist(err) && p == filepath.Join(root, d) {
					return filepath.SkipDir
				}
				return err
			}
			name := de.Name()
			if de.IsDir() {
				if name == "testdata" || strings.HasPrefix(name, ".") {
					return filepath.SkipDir
				}
				return nil
			}
			if strings.HasSuffix(name, "_test.go") || !de.Type().IsRegular() {
				return nil
			}
			rel, err := filepath.Rel(root, p)
			if err != nil {
				return err
			}
			files = append(files, filepath.ToSlash(rel))
			return nil
		})
		if err != nil {
			return "", fmt.Errorf("source digest: %w", err)
		}
	}
	for _, f := range sourceFiles {
		if _, err := os.Stat(filepath.Join(root, f)); err == nil {
			files = append(files, f)
		}
	}
	sort.Strings(files)
	h := sha256.New()
	for _, f := range files {
		fh, err := os.Open(filepath.Join(root, f))
		if err != nil {
			return "", fmt.Errorf("source digest: %w", err)
		}
		fmt.Fprintf(h, "%s\x00", f)
		fileHash := sha256.New()
		_, err = io.Copy(fileHash, fh)
		fh.Close()
		if err != nil {
			return "", fmt.Errorf("source digest: read %s: %w", f, err)
		}
		h.Write(fileHash.Sum(nil))
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}
