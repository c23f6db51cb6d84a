package cli

import (
	"context"
	"encoding/json"
	"fmt"

	"yakimg/builder/imagediff"
)

// exitDifferent is diff(1)'s status for inputs that differ; it is the
// same number as exitError, which is why diff reports trouble as exitUsage.
const exitDifferent = 1

func runDiff(_ context.Context, args []string, std Stdio) int {
	fs := newFlags("diff", "[--json] A B",
		"Explains how two built images differ. Artifacts with equal digests in manifest.json are\n"+
			"not opened; a differing initramfs or disk partition is compared file by file (type, size,\n"+
			"mode, owner, content sha256, symlink target), a differing kernel is only named.\n"+
			"Exit status, as with diff(1): 0 identical, 1 different, 2 trouble (usage, missing\n"+
			"directory, not an image, unreadable artifact).",
		"yakimg diff out /tmp/rebuild", std)
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if code := parse(fs, args, std); code >= 0 {
		return code
	}
	if fs.NArg() != 2 {
		fs.Usage()
		return exitUsage
	}
	// diff(1) reserves 1 for "different", so every failure to compare is 2.
	r, err := imagediff.Diff(fs.Arg(0), fs.Arg(1))
	if err != nil {
		return fail(std, "diff", exitUsage, err)
	}
	if *asJSON {
		data, err := json.MarshalIndent(r, "", "  ")
		if err != nil {
			return fail(std, "diff", exitUsage, err)
		}
		fmt.Fprintf(std.Stdout, "%s\n", data)
	} else {
		fmt.Fprint(std.Stdout, r.Text())
	}
	if r.Identical() {
		return exitOK
	}
	return exitDifferent
}
