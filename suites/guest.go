package suites

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"yakimg/suites/report"
)

// imageInfo is /etc/yakimg/image.json, written by the builder.
type imageInfo struct {
	YakirosVersion string `json:"yakiros_version"`
	ImageDigest    string `json:"image_digest"`
	LockDigest     string `json:"lock_digest"`
	OS             string `json:"os"`
}

func readImageInfo(path string) (imageInfo, error) {
	var info imageInfo
	data, err := os.ReadFile(path)
	if err != nil {
		return info, fmt.Errorf("read image info: %w", err)
	}
	if err := json.Unmarshal(data, &info); err != nil {
		return info, fmt.Errorf("decode image info %s: %w", path, err)
	}
	return info, nil
}

// procField returns the value of "key: value" in a /proc file such as
// meminfo, cpuinfo or <pid>/status: the first line whose key matches.
func procField(path, key string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v), nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	return "", fmt.Errorf("%s: no %q line", path, key)
}

// procKB reads a "key: N kB" field.
func procKB(path, key string) (int64, error) {
	v, err := procField(path, key)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(strings.TrimSuffix(v, " kB"), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %s: %w", path, key, err)
	}
	return n, nil
}

// vmConfig describes the machine as the guest sees it. It fills in what it
// can and returns the errors of what it could not.
func vmConfig(osName string) (report.VMConfig, error) {
	c := report.VMConfig{CPUs: runtime.NumCPU(), OS: osName}
	var errs []error
	if kb, err := procKB("/proc/meminfo", "MemTotal"); err != nil {
		errs = append(errs, err)
	} else {
		c.RAMMB = int(kb / 1024)
	}
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		errs = append(errs, fmt.Errorf("uname: %w", err))
	} else {
		c.Kernel = unix.ByteSliceToString(u.Release[:])
	}
	if m, err := procField("/proc/cpuinfo", "model name"); err != nil {
		errs = append(errs, err)
	} else {
		c.CPUModel = m
	}
	return c, errors.Join(errs...)
}

// bootID identifies this boot; it is the report's test_run_id.
func bootID() (string, error) {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return "", fmt.Errorf("read boot id: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// pid1Metrics returns the metrics of PID 1 measured at the end of the
// run; cases add their own with T.Metric.
func pid1Metrics() (map[string]float64, error) {
	m := map[string]float64{}
	rss, err := procKB("/proc/1/status", "VmRSS")
	if err != nil {
		return m, fmt.Errorf("memory of PID 1: %w", err)
	}
	m["yakiros_memory_kb"] = float64(rss)
	return m, nil
}
