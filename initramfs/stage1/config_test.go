package stage1

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func validConfig() Config {
	return Config{
		Modules: []string{
			"/lib/modules/6.1.0-50-cloud-amd64/kernel/drivers/virtio/virtio_ring.ko",
			"/lib/modules/6.1.0-50-cloud-amd64/kernel/drivers/virtio/virtio.ko",
		},
		Root:       "/dev/vda1",
		Checkpoint: "/dev/vda2",
		Init:       "/sbin/graph-resolver",
		DeadlineS:  600,
		Channel:    "/dev/ttyS1",
	}
}

func TestConfigRoundTrip(t *testing.T) {
	want := validConfig()
	data, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseConfig(data)
	if err != nil {
		t.Fatalf("ParseConfig(%s): %v", data, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ParseConfig(Marshal(c)) = %+v; want %+v", got, want)
	}
	if !strings.Contains(string(data), `"deadline_s":600`) {
		t.Errorf("Marshal = %s; want the key deadline_s", data)
	}
}

func TestParseConfigRejectsUnknownKeys(t *testing.T) {
	if _, err := ParseConfig([]byte(`{"root":"/dev/vda1","deadline":5}`)); err == nil {
		t.Error(`ParseConfig with key "deadline" = nil error; want unknown field`)
	}
	if _, err := ParseConfig([]byte(`{"root":`)); err == nil {
		t.Error("ParseConfig(truncated) = nil error")
	}
}

func TestValidate(t *testing.T) {
	if err := validConfig().Validate(); err != nil {
		t.Errorf("Validate(valid) = %v", err)
	}
	noCheckpoint := validConfig()
	noCheckpoint.Checkpoint = ""
	if err := noCheckpoint.Validate(); err != nil {
		t.Errorf("Validate(no checkpoint) = %v; a checkpoint partition is optional", err)
	}
	for name, mutate := range map[string]func(*Config){
		"root":       func(c *Config) { c.Root = "" },
		"checkpoint": func(c *Config) { c.Checkpoint = "vda2" },
		"init":       func(c *Config) { c.Init = "graph-resolver" },
		"deadline_s": func(c *Config) { c.DeadlineS = 0 },
		"channel":    func(c *Config) { c.Channel = "ttyS1" },
		"module":     func(c *Config) { c.Modules = append(c.Modules, "") },
	} {
		c := validConfig()
		mutate(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("Validate(bad %s) = %v; want an error naming %s", name, err, name)
		}
	}
}

func TestWithCmdline(t *testing.T) {
	for _, tc := range []struct {
		cmdline string
		want    func(*Config)
	}{
		{"console=ttyS0 panic=-1", func(*Config) {}},
		{"console=ttyS0 yakimg.root=/dev/vdb1 quiet", func(c *Config) { c.Root = "/dev/vdb1" }},
		{"yakimg.checkpoint=/dev/vdb2 yakimg.deadline=42\n", func(c *Config) { c.Checkpoint, c.DeadlineS = "/dev/vdb2", 42 }},
		{"yakimg.deadline=5 yakimg.deadline=7", func(c *Config) { c.DeadlineS = 7 }},
		{`yakimg.root="/dev/disk/by-label/my root"`, func(c *Config) { c.Root = "/dev/disk/by-label/my root" }},
		{"yakimg.checkpoint=", func(c *Config) { c.Checkpoint = "" }},
		{"xyakimg.root=/dev/x yakimg.rootx=/dev/y", func(*Config) {}},
	} {
		want := validConfig()
		tc.want(&want)
		got, err := withCmdline(validConfig(), tc.cmdline)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("withCmdline(%q) = %+v, %v; want %+v", tc.cmdline, got, err, want)
		}
	}
	for _, bad := range []string{"yakimg.deadline=soon", "yakimg.deadline=0", "yakimg.deadline=-3", "yakimg.deadline"} {
		if _, err := withCmdline(validConfig(), bad); err == nil {
			t.Errorf("withCmdline(%q) = nil error; want a bad deadline", bad)
		}
	}
}

func TestSplitCmdline(t *testing.T) {
	for in, want := range map[string][]string{
		"":                        nil,
		"  a  b\tc\n":             {"a", "b", "c"},
		`x="1 2" "y=3 4" z`:       {"x=1 2", "y=3 4", "z"},
		`console=ttyS0 init="/a"`: {"console=ttyS0", "init=/a"},
		`empty="" e`:              {"empty=", "e"},
	} {
		if got := splitCmdline(in); !reflect.DeepEqual(got, want) {
			t.Errorf("splitCmdline(%q) = %q; want %q", in, got, want)
		}
	}
}

func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()
	cfgPath, cmdPath := filepath.Join(dir, "stage1.json"), filepath.Join(dir, "cmdline")
	data, _ := json.Marshal(validConfig())
	write := func(p, s string) {
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(cfgPath, string(data))
	write(cmdPath, "console=ttyS0 yakimg.deadline=30 yakimg.root=/dev/vdc\n")
	got, err := loadConfig(cfgPath, cmdPath)
	want := validConfig()
	want.DeadlineS, want.Root = 30, "/dev/vdc"
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("loadConfig = %+v, %v; want %+v", got, err, want)
	}

	write(cmdPath, "yakimg.root=vdc\n")
	if _, err := loadConfig(cfgPath, cmdPath); err == nil {
		t.Error("loadConfig with yakimg.root=vdc = nil error; the override must be validated")
	}
	if _, err := loadConfig(filepath.Join(dir, "missing.json"), cmdPath); err == nil {
		t.Error("loadConfig(missing file) = nil error")
	}
}
