package vm

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"regexp"
	"strings"
	"time"
)

// A guest that hangs under TCG says nothing: with no NMI watchdog, vCPUs
// spinning with interrupts off never print a soft-lockup report. Before
// QEMU is killed at the timeout, its human monitor is asked where each vCPU
// is, so that a hang leaves an instruction pointer and a stack behind.

const (
	// monitorTimeout bounds the whole conversation with the monitor; a
	// QEMU too wedged to answer must not delay the kill for long.
	monitorTimeout = 5 * time.Second
	// stackWords is how many 8-byte words above each vCPU's stack pointer
	// are dumped: enough for a few frames of return addresses.
	stackWords    = 96
	monitorPrompt = "(qemu) "
)

// monitorArgs serves QEMU's human monitor on a unix socket; wait=off lets
// the guest run without anyone connected.
func monitorArgs(path string) []string {
	return []string{"-monitor", "unix:" + optEscape(path) + ",server=on,wait=off"}
}

// guestState asks the monitor at path for each vCPU's registers and the top
// of its stack. cpus is the guest's vCPU count.
func guestState(path string, cpus int) (string, error) {
	conn, err := net.DialTimeout("unix", path, time.Second)
	if err != nil {
		return "", fmt.Errorf("monitor: %w", err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(monitorTimeout))
	r := bufio.NewReader(conn)
	if _, err := readToPrompt(r); err != nil {
		return "", fmt.Errorf("monitor greeting: %w", err)
	}
	var out strings.Builder
	ask := func(cmd string) error {
		if _, err := fmt.Fprintf(conn, "%s\n", cmd); err != nil {
			return err
		}
		reply, err := readToPrompt(r)
		if err != nil {
			return fmt.Errorf("monitor %q: %w", cmd, err)
		}
		out.WriteString(reply)
		return nil
	}
	for i := 0; i < cpus; i++ {
		// "info registers" heads its output with CPU#i.
		if err := ask(fmt.Sprintf("cpu %d", i)); err != nil {
			return out.String(), err
		}
		before := out.Len()
		if err := ask("info registers"); err != nil {
			return out.String(), err
		}
		// QEMU 7.2's monitor knows no $rsp ("unknown register"): the
		// stack is dumped from the address itself.
		if rsp := rspField.FindStringSubmatch(out.String()[before:]); rsp != nil {
			if err := ask(fmt.Sprintf("x/%dgx 0x%s", stackWords, rsp[1])); err != nil {
				return out.String(), err
			}
		}
	}
	return out.String(), nil
}

// readToPrompt returns the monitor's output up to its next prompt, with the
// echoed command line and terminal escapes removed.
func readToPrompt(r *bufio.Reader) (string, error) {
	var buf bytes.Buffer
	for !bytes.HasSuffix(buf.Bytes(), []byte(monitorPrompt)) {
		b, err := r.ReadByte()
		if err != nil {
			return buf.String(), err
		}
		buf.WriteByte(b)
	}
	text := strings.TrimSuffix(buf.String(), monitorPrompt)
	text = terminalEscape.ReplaceAllString(text, "")
	text = strings.ReplaceAll(text, "\r", "")
	// The monitor echoes the command on the first line.
	if i := strings.IndexByte(text, '\n'); i >= 0 && !strings.HasPrefix(text, "QEMU") {
		text = text[i+1:]
	}
	return text, nil
}

var (
	terminalEscape = regexp.MustCompile(`\x1b\[[0-9;]*[A-Za-z]`)
	cpuHeader      = regexp.MustCompile(`(?m)^CPU#(\d+)$`)
	ripField       = regexp.MustCompile(`RIP=([0-9a-f]+)`)
	rspField       = regexp.MustCompile(`RSP=([0-9a-f]+)`)
	hltField       = regexp.MustCompile(`HLT=([01])`)
)

// stateSummary is one line per dump: where each vCPU was and whether it was
// halted (idle) or running.
func stateSummary(dump string) string {
	var parts []string
	idx := cpuHeader.FindAllStringSubmatchIndex(dump, -1)
	for n, m := range idx {
		end := len(dump)
		if n+1 < len(idx) {
			end = idx[n+1][0]
		}
		sect := dump[m[0]:end]
		p := "CPU#" + dump[m[2]:m[3]]
		if rip := ripField.FindStringSubmatch(sect); rip != nil {
			p += " RIP=" + rip[1]
		}
		if hlt := hltField.FindStringSubmatch(sect); hlt != nil {
			p += map[string]string{"0": " running", "1": " halted"}[hlt[1]]
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, ", ")
}

// askGuestState dumps the vCPUs of a guest about to be killed for its
// timeout and says in one line where they were; the dump goes to the
// console log.
func askGuestState(c Config, monitor string) string {
	dump, err := guestState(monitor, c.CPUs)
	if s := stateSummary(dump); s != "" {
		fmt.Fprintf(c.Stderr, "vm: guest state at the timeout: %s\n", s)
	}
	if err != nil {
		fmt.Fprintf(c.Stderr, "vm: guest state at the timeout: %v\n", err)
	}
	return dump
}
