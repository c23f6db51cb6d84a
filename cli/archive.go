package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"yakimg/builder"
	"yakimg/builder/archive"

	"yakimg/internal/atomicfile"
)

func runArchive(_ context.Context, args []string, std Stdio) int {
	fs := newFlags("archive", "[--project DIR] [DIR] -o FILE | --verify FILE",
		"Packs the image in DIR (default out) into FILE, one uncompressed tar holding manifest.json,\n"+
			"the project's yakimg.lock (which must be the one the image was built from), an SPDX 2.3\n"+
			"SBOM and the artifacts; 'yakimg boot FILE' boots it. An image whose files do not match\n"+
			"its manifest is refused. FILE is written atomically and is the same bytes every time.\n"+
			"With --verify, checks every member of FILE against the manifest inside it.\n"+
			"Exit status: 0 written or verified, 1 FILE is corrupt (one line per problem), 2 usage or\n"+
			"input error.",
		"yakimg archive out -o image.yakimg && yakimg archive --verify image.yakimg", std)
	var pf projectFlags
	pf.register(fs)
	output := fs.String("o", "", "write the archive to `FILE`")
	verify := fs.Bool("verify", false, "verify the archive FILE given as the argument instead of writing one")
	if code := parse(fs, args, std); code >= 0 {
		return code
	}
	if *verify {
		if fs.NArg() != 1 || *output != "" {
			return fail(std, "archive", exitUsage, errors.New("--verify takes exactly one archive FILE and no -o"))
		}
		return verifyArchive(fs.Arg(0), std)
	}
	if *output == "" {
		return fail(std, "archive", exitUsage, errors.New("-o FILE is required"))
	}
	if fs.NArg() > 1 {
		return fail(std, "archive", exitUsage, fmt.Errorf("unexpected argument %q", fs.Arg(1)))
	}
	dir := "out"
	if fs.NArg() == 1 {
		dir = fs.Arg(0)
	}
	root, err := builder.FindRoot(pf.dir)
	if err != nil {
		return fail(std, "archive", exitUsage, err)
	}
	lock, err := os.ReadFile(filepath.Join(root, builder.LockFile))
	if err != nil {
		return fail(std, "archive", exitUsage, err)
	}
	if err := writeArchive(*output, dir, lock); err != nil {
		return fail(std, "archive", exitUsage, err)
	}
	fmt.Fprintf(std.Stdout, "wrote %s\n", *output)
	return exitOK
}

// writeArchive archives dir into path; a failure never leaves a partial
// archive there.
func writeArchive(path, dir string, lock []byte) error {
	return atomicfile.Write(path, func(w io.Writer) error {
		if err := archive.Create(w, dir, lock); err != nil {
			return fmt.Errorf("archive %s: %w", dir, err)
		}
		return nil
	})
}

func verifyArchive(path string, std Stdio) int {
	f, err := os.Open(path)
	if err != nil {
		return fail(std, "archive", exitUsage, err)
	}
	defer f.Close()
	m, err := archive.Verify(bufio.NewReaderSize(f, 1<<20))
	var corrupt *archive.CorruptError
	switch {
	case errors.As(err, &corrupt):
		for _, p := range corrupt.Problems {
			fmt.Fprintf(std.Stdout, "CORRUPT %s: %s\n", path, p)
		}
		return exitError
	case err != nil:
		return fail(std, "archive", exitUsage, err)
	}
	fmt.Fprintf(std.Stdout, "ok %s: image %s, %d members match its manifest\n", path, m.ImageDigest, len(archive.Members))
	return exitOK
}

// extractArchive verifies and unpacks the archive at path into a new
// temporary directory, which the caller removes.
func extractArchive(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	tmp, err := os.MkdirTemp("", "yakimg-boot-")
	if err != nil {
		return "", fmt.Errorf("unpack %s: %w", path, err)
	}
	if _, err := archive.Extract(bufio.NewReaderSize(f, 1<<20), tmp); err != nil {
		os.RemoveAll(tmp)
		return "", fmt.Errorf("unpack %s: %w", path, err)
	}
	return tmp, nil
}
