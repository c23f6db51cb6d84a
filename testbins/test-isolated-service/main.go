// Command test-isolated-service is a YakirOS test service for the isolation
// suite: it reports what it sees from inside its cgroup and namespaces, and
// on command pushes against its limits. It serves one command per line on
// --listen (host:port, or the path of a Unix socket, which a service in a
// network namespace of its own can still be reached on) and answers each
// with one line:
//
//	info       a JSON object: pid, hostname, the names in /tmp, the network
//	           interfaces and whether each is up, the cgroup (from
//	           /proc/self/cgroup) and its memory.max, pids.max and cpu.max
//	touch NAME "ok": creates /tmp/NAME
//	alloc N    "ok allocated N MiB": allocates N MiB and writes every page,
//	           keeping it; past memory.max the kernel kills the service
//	fork N     "ok forked K of N[: ERROR]": starts up to N children
//	           (--child, a sleep) until one fails, then kills and reaps them
//	spin S     "ok spun S s": keeps every CPU busy for S seconds
//
// SIGTERM ends it with status 0.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:7074", "host:port, or a Unix socket path")
	child := flag.String("child", "/bin/busybox sleep 3600", "the command fork starts, split at blanks")
	flag.Parse()
	network := "tcp"
	if strings.HasPrefix(*listen, "/") {
		network = "unix"
		os.Remove(*listen) // left by an earlier instance
	}
	ln, err := net.Listen(network, *listen)
	if err != nil {
		log.Fatalf("test-isolated-service: %v", err)
	}
	log.Printf("test-isolated-service: pid %d listening on %s", os.Getpid(), *listen)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM)
	go func() {
		<-sigs
		if network == "unix" {
			os.Remove(*listen)
		}
		os.Exit(0)
	}()
	s := &service{child: strings.Fields(*child)}
	for {
		c, err := ln.Accept()
		if err != nil {
			log.Fatalf("test-isolated-service: %v", err)
		}
		go s.serve(c)
	}
}

type service struct {
	child []string
	mu    sync.Mutex
	kept  [][]byte // allocations, kept alive
}

func (s *service) serve(c net.Conn) {
	defer c.Close()
	sc := bufio.NewScanner(c)
	for sc.Scan() {
		cmd, arg, _ := strings.Cut(strings.TrimSpace(sc.Text()), " ")
		fmt.Fprintln(c, s.do(cmd, arg))
	}
}

func (s *service) do(cmd, arg string) string {
	n, nerr := strconv.Atoi(arg)
	switch {
	case cmd == "info":
		data, err := json.Marshal(see())
		if err != nil {
			return "error " + err.Error()
		}
		return string(data)
	case cmd == "touch" && arg != "" && !strings.Contains(arg, "/"):
		if err := os.WriteFile(filepath.Join("/tmp", arg), nil, 0o644); err != nil {
			return "error " + err.Error()
		}
		return "ok"
	case nerr != nil || n < 0:
	case cmd == "alloc":
		s.alloc(n)
		return fmt.Sprintf("ok allocated %d MiB", n)
	case cmd == "fork":
		k, err := s.fork(n)
		if err != nil {
			return fmt.Sprintf("ok forked %d of %d: %v", k, n, err)
		}
		return fmt.Sprintf("ok forked %d of %d", k, n)
	case cmd == "spin":
		spin(time.Duration(n) * time.Second)
		return fmt.Sprintf("ok spun %d s", n)
	}
	return "error unknown command; known: info, touch NAME, alloc MIB, fork N, spin SECONDS"
}

// alloc allocates n MiB and writes every page, so the memory is charged.
func (s *service) alloc(n int) {
	for range n {
		b := make([]byte, 1<<20)
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
		}
		s.mu.Lock()
		s.kept = append(s.kept, b)
		s.mu.Unlock()
	}
}

// fork starts up to n children until one fails, then kills and reaps them
// all: being at pids.max must not last, since the runtime needs threads
// too.
func (s *service) fork(n int) (int, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var pids []int
	var ferr error
	for range n {
		pid, err := syscall.ForkExec(s.child[0], s.child, &syscall.ProcAttr{})
		if err != nil {
			ferr = err
			break
		}
		pids = append(pids, pid)
	}
	for _, pid := range pids {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	for _, pid := range pids {
		var ws syscall.WaitStatus
		syscall.Wait4(pid, &ws, 0, nil)
	}
	return len(pids), ferr
}

func spin(d time.Duration) {
	end := time.Now().Add(d)
	var wg sync.WaitGroup
	for range runtime.NumCPU() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for x := 0; time.Now().Before(end); x++ {
			}
		}()
	}
	wg.Wait()
}

// View is the answer to info.
type View struct {
	Pid        int               `json:"pid"`
	Hostname   string            `json:"hostname"`
	Tmp        []string          `json:"tmp"`
	Interfaces map[string]bool   `json:"interfaces"` // name → up
	Cgroup     string            `json:"cgroup"`
	Limits     map[string]string `json:"limits"`
	UID        int               `json:"uid"`
}

func see() View {
	v := View{Pid: os.Getpid(), Tmp: []string{}, Interfaces: map[string]bool{}, Limits: map[string]string{}, UID: os.Getuid()}
	v.Hostname, _ = os.Hostname()
	if es, err := os.ReadDir("/tmp"); err == nil {
		for _, e := range es {
			v.Tmp = append(v.Tmp, e.Name())
		}
	}
	if ifs, err := net.Interfaces(); err == nil {
		for _, i := range ifs {
			v.Interfaces[i.Name] = i.Flags&net.FlagUp != 0
		}
	}
	if data, err := os.ReadFile("/proc/self/cgroup"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if p, ok := strings.CutPrefix(line, "0::"); ok {
				v.Cgroup = p
			}
		}
	}
	for _, f := range []string{"memory.max", "pids.max", "cpu.max"} {
		if data, err := os.ReadFile(filepath.Join("/sys/fs/cgroup", v.Cgroup, f)); err == nil {
			v.Limits[f] = strings.TrimSpace(string(data))
		}
	}
	return v
}
