package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"yakimg/builder"
	"yakimg/builder/imagediff"
	"yakimg/rootfs"
)

func runVerify(ctx context.Context, args []string, std Stdio) int {
	fs := newFlags("verify", "[--project DIR] [--cache DIR] [DIR|ARCHIVE]",
		"Rebuilds the image in DIR (default out), or in an archive written by 'yakimg archive',\n"+
			"from the inputs its manifest.json records and\n"+
			"compares digests: every artifact of the rebuild, and every file in DIR, must hash to what\n"+
			"the manifest says. The source, yakimg.lock and Go version must be the recorded ones; the\n"+
			"recorded SOURCE_DATE_EPOCH is used whatever the environment says.\n"+
			"Exit status: 0 every artifact matches, 1 some artifact does not (a diff follows), 2 trouble\n"+
			"(usage, not an image, inputs that differ from this checkout, a failed rebuild).",
		"yakimg verify out", std)
	var pf projectFlags
	pf.register(fs)
	if code := parse(fs, args, std); code >= 0 {
		return code
	}
	if fs.NArg() > 1 {
		return fail(std, "verify", exitUsage, fmt.Errorf("unexpected argument %q", fs.Arg(1)))
	}
	dir := "out"
	if fs.NArg() == 1 {
		dir = fs.Arg(0)
	}
	if fi, err := os.Stat(dir); err == nil && fi.Mode().IsRegular() {
		// An archive: check it against its own manifest, then verify
		// what it holds like a directory.
		tmp, err := extractArchive(dir)
		if err != nil {
			return fail(std, "verify", exitUsage, err)
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	// 1 means "does not reproduce", so every failure to verify is 2.
	m, err := imagediff.ReadManifest(dir)
	if err != nil {
		return fail(std, "verify", exitUsage, err)
	}
	proj, lock, err := pf.loadWithLock()
	if err != nil {
		return fail(std, "verify", exitUsage, err)
	}
	cache := rootfs.Cache{Dir: pf.cache}
	if missing := missingFromCache(cache, lock); len(missing) > 0 {
		return fail(std, "verify", exitUsage, fmt.Errorf("not in the cache %s: %s; run 'yakimg fetch'", cache.Dir, strings.Join(missing, ", ")))
	}
	if mismatches, err := inputMismatches(ctx, m, proj, lock); err != nil {
		return fail(std, "verify", exitUsage, err)
	} else if len(mismatches) > 0 {
		for _, e := range mismatches {
			fail(std, "verify", exitUsage, e)
		}
		return exitUsage
	}

	abs, err := filepath.Abs(dir)
	if err != nil {
		return fail(std, "verify", exitUsage, err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(abs), "."+filepath.Base(abs)+".verify-")
	if err != nil {
		return fail(std, "verify", exitUsage, err)
	}
	defer os.RemoveAll(tmp)
	epoch := time.Unix(m.SourceDateEpoch, 0).UTC()
	res, err := builder.Build(ctx, builder.Options{
		Project: proj, Lock: lock, Cache: cache, OutDir: filepath.Join(tmp, "rebuilt"), Epoch: &epoch,
		Progress: func(format string, a ...any) { fmt.Fprintf(std.Stderr, "yakimg verify: "+format+"\n", a...) },
	})
	if err != nil {
		return fail(std, "verify", exitUsage, fmt.Errorf("rebuild: %w", err))
	}

	tampered, irreproducible, err := compareOutputs(std.Stdout, dir, m, res)
	if err != nil {
		return fail(std, "verify", exitUsage, err)
	}
	if irreproducible {
		r, err := imagediff.Diff(dir, res.Dir)
		if err != nil {
			return fail(std, "verify", exitUsage, err)
		}
		// A rebuild differing only in manifest.json has no artifact to explain.
		if !r.Identical() {
			fmt.Fprint(std.Stdout, r.Text())
		}
	}
	if tampered || irreproducible {
		return exitDifferent
	}
	return exitOK
}

// inputMismatches names every recorded input this checkout cannot
// reproduce, one error each. The epoch is not among them: the rebuild
// simply uses the recorded one.
func inputMismatches(ctx context.Context, m *builder.Manifest, proj *builder.Project, lock *rootfs.Lock) ([]error, error) {
	source, err := builder.SourceDigest(proj.Root)
	if err != nil {
		return nil, err
	}
	goVersion, err := builder.GoVersion(ctx)
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, in := range []struct{ name, recorded, here, hint string }{
		{"source digest", m.SourceDigest, source, "check out the commit the image was built from"},
		{"lock digest", m.LockDigest, lock.Digest(), "use the " + builder.LockFile + " the image was built from"},
		{"Go version", m.GoVersion, goVersion, "build with " + m.GoVersion},
	} {
		if in.recorded != in.here {
			errs = append(errs, fmt.Errorf("%s: image %s, this checkout %s; %s", in.name, in.recorded, in.here, in.hint))
		}
	}
	return errs, nil
}

// compareOutputs prints one line per artifact of the manifest m of dir,
// plus manifest.json itself: ok when both the file in dir and the rebuild
// hash to the recorded digest. tampered reports a file in dir that differs
// from its manifest, irreproducible a rebuild that differs from it.
func compareOutputs(w io.Writer, dir string, m *builder.Manifest, res *builder.Result) (tampered, irreproducible bool, err error) {
	rebuilt := map[string]string{}
	for _, o := range res.Manifest.Outputs {
		rebuilt[o.Name] = o.SHA256
	}
	recorded := append([]builder.Output(nil), m.Outputs...)
	// The manifest is not among its own outputs; the rebuild's must be
	// byte-identical too, which covers the packages, layout and image digest.
	manifestSHA, err := fileSHA256(filepath.Join(dir, builder.ManifestFile))
	if err != nil {
		return false, false, err
	}
	recorded = append(recorded, builder.Output{Name: builder.ManifestFile, SHA256: manifestSHA})
	if rebuilt[builder.ManifestFile], err = fileSHA256(filepath.Join(res.Dir, builder.ManifestFile)); err != nil {
		return false, false, err
	}

	for _, o := range recorded {
		got, ok := rebuilt[o.Name]
		delete(rebuilt, o.Name)
		actual, err := fileSHA256(filepath.Join(dir, o.Name))
		switch {
		case errors.Is(err, os.ErrNotExist):
			fmt.Fprintf(w, "MISMATCH %s %s is missing\n", o.Name, filepath.Join(dir, o.Name))
			tampered = true
			continue
		case err != nil:
			return false, false, err
		case actual != o.SHA256:
			fmt.Fprintf(w, "MISMATCH %s %s is sha256:%s, its manifest says sha256:%s (changed after the build)\n", o.Name, filepath.Join(dir, o.Name), actual, o.SHA256)
			tampered = true
			continue
		}
		switch {
		case !ok:
			fmt.Fprintf(w, "MISMATCH %s the rebuild has no such artifact\n", o.Name)
			irreproducible = true
		case got != o.SHA256:
			fmt.Fprintf(w, "MISMATCH %s rebuilt sha256:%s, recorded sha256:%s\n", o.Name, got, o.SHA256)
			irreproducible = true
		default:
			fmt.Fprintf(w, "ok %s sha256:%s\n", o.Name, o.SHA256)
		}
	}
	for _, o := range res.Manifest.Outputs {
		if _, extra := rebuilt[o.Name]; extra {
			fmt.Fprintf(w, "MISMATCH %s rebuilt sha256:%s, not in the recorded manifest\n", o.Name, o.SHA256)
			irreproducible = true
		}
	}
	return tampered, irreproducible, nil
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("digest %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
