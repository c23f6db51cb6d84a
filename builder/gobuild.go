package builder

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// GoBinary is one of our programs that goes into the image.
type GoBinary struct {
	Name string // output file name
	Pkg  string // package path relative to the module root, e.g. "./cmd/graphctl"
}

// GuestBinaries are the programs of the image.
var GuestBinaries = []GoBinary{
	{"graph-resolver", "./cmd/graph-resolver"},
	{"graphctl", "./cmd/graphctl"},
	{"yakimg-runner", "./cmd/yakimg-runner"},
	{"test-echo-server", "./testbins/test-echo-server"},
	{"test-web-server", "./testbins/test-web-server"},
	{"test-database", "./testbins/test-database"},
	{"test-monitor", "./testbins/test-monitor"},
	{"test-health-service", "./testbins/test-health-service"},
	{"test-file-server", "./testbins/test-file-server"},
	{"test-crash-on-start", "./testbins/test-crash-on-start"},
	{"test-never-ready", "./testbins/test-never-ready"},
	{"test-isolated-service", "./testbins/test-isolated-service"},
	{"test-checkpoint-service", "./testbins/test-checkpoint-service"},
}

// goEnv is the environment of a reproducible build (DESIGN §4): static,
// no VCS stamping, a fixed instruction-set level, no host paths.
func goEnv() []string {
	env := []string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64", "GOAMD64=v1", "GOFLAGS=-buildvcs=false -trimpath"}
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "CGO_ENABLED", "GOOS", "GOARCH", "GOAMD64", "GOFLAGS", "GOEXPERIMENT", "GO111MODULE", "GOWORK":
			continue
		}
		env = append(env, kv)
	}
	return append(env, "GOWORK=off")
}

// GoVersion is the toolchain that builds the image; it is one of its inputs.
func GoVersion(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOVERSION").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOVERSION: %w (is Go installed and on PATH?)", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// BuildGo compiles bins from the module at root into outDir, stamping
// version into yakimg/version.Version. The binaries depend only on the
// source, the toolchain and the version string.
func BuildGo(ctx context.Context, root, outDir, version string, bins []GoBinary) error {
	args := []string{"build", "-trimpath", "-ldflags", "-s -w -buildid= -X yakimg/version.Version=" + version, "-o", outDir + string(filepath.Separator)}
	for _, b := range bins {
		args = append(args, b.Pkg)
	}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	cmd.Env = goEnv()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build: %w\n%s", err, strings.TrimSpace(stderr.String()))
	}
	for _, b := range bins {
		produced := filepath.Join(outDir, filepath.Base(b.Pkg))
		if produced == filepath.Join(outDir, b.Name) {
			continue
		}
		if err := os.Rename(produced, filepath.Join(outDir, b.Name)); err != nil {
			return fmt.Errorf("go build: %w", err)
		}
	}
	return nil
}
