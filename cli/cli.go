// Package cli is the yakimg command line: one file per verb, each a small
// function over a flag set, so tests can drive the whole CLI in-process.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
)

// Exit codes shared by every verb; boot adds the guest outcomes of DESIGN §3
// (see package vm).
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

// Stdio is what a verb may touch of its process.
type Stdio struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
}

type verb struct {
	summary string
	run     func(ctx context.Context, args []string, io Stdio) int
}

var verbs = map[string]verb{
	"archive": {"pack a built image, its lock and an SBOM into one verifiable file", runArchive},
	"build":   {"assemble vmlinuz, initramfs.cpio.zst and disk.img from the lock and the cache", runBuild},
	"boot":    {"boot an image in QEMU, run the suites and read the report", runBoot},
	"diff":    {"explain how two built images differ, artifact by artifact and file by file", runDiff},
	"verify":  {"rebuild an image from its recorded inputs and compare digests", runVerify},
	"fetch":   {"download every locked package into the content-addressed cache", runFetch},
	"lock":    {"pin the packages of yakimg.toml in yakimg.lock", runLock},
}

const mainUsage = `yakimg builds a reproducible YakirOS test image and boots it.

Usage: yakimg <verb> [flags]

Verbs:
%s
Typical use:
  yakimg fetch && yakimg build && yakimg boot

Run 'yakimg <verb> --help' for a verb's flags and an example.
`

func usage(w io.Writer) {
	names := make([]string, 0, len(verbs))
	for n := range verbs {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, "  %-7s %s\n", n, verbs[n].summary)
	}
	fmt.Fprintf(w, mainUsage, b.String())
}

// Main runs yakimg with args (without the program name) and returns the
// process exit code.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	std := Stdio{Stdin: stdin, Stdout: stdout, Stderr: stderr}
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	switch args[0] {
	case "-h", "--help", "help":
		usage(stdout)
		return exitOK
	}
	v, ok := verbs[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "yakimg: unknown verb %q; run 'yakimg --help' for the list\n", args[0])
		return exitUsage
	}
	return v.run(ctx, args[1:], std)
}

// newFlags returns a flag set whose --help prints synopsis, description,
// the flags and an example.
func newFlags(name, synopsis, description, example string, std Stdio) *flag.FlagSet {
	fs := flag.NewFlagSet("yakimg "+name, flag.ContinueOnError)
	fs.SetOutput(std.Stderr)
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "Usage: yakimg %s %s\n\n%s\n\nFlags:\n", name, synopsis, description)
		fs.PrintDefaults()
		fmt.Fprintf(w, "\nExample:\n  %s\n", example)
	}
	return fs
}

// parse parses args, allowing flags after positional arguments ("boot out
// --suite smoke"); it returns the exit code to stop with, or -1 to go on.
// The positional arguments are left in fs.Args().
func parse(fs *flag.FlagSet, args []string, std Stdio) int {
	// The flag package prints the usage itself, to the error output, for
	// --help as for a bad flag; it is printed here instead, so that --help
	// goes to stdout alone.
	usage := fs.Usage
	fs.Usage = func() {}
	defer func() { fs.Usage = usage }()
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fs.SetOutput(std.Stdout)
				usage()
				return exitOK
			}
			usage()
			return exitUsage
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			positional = append(positional, rest...) // everything after "--" is positional
			break
		}
		positional, args = append(positional, rest[0]), rest[1:]
	}
	// Re-parse only the positional arguments after a "--" so fs.Args() holds them.
	if err := fs.Parse(append([]string{"--"}, positional...)); err != nil {
		return exitUsage
	}
	return -1
}

// fail prints err as one line prefixed with the verb and returns code.
func fail(std Stdio, verb string, code int, err error) int {
	fmt.Fprintf(std.Stderr, "yakimg %s: %v\n", verb, err)
	return code
}

// multiFlag is a repeatable string flag that also accepts comma lists.
type multiFlag []string

func (m *multiFlag) String() string { return strings.Join(*m, ",") }

func (m *multiFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*m = append(*m, s)
		}
	}
	return nil
}
