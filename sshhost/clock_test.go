package sshhost

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// runClockScript runs clockScript on this machine with a fake date(1)
// first on PATH (the script's own PATH line removed, so that the fake is
// found): the fake prints now for +%s%N and records what -s is given, or
// refuses it as a container without CAP_SYS_TIME does when deny is set.
// It returns the script's output, its exit status and the -s arguments.
func runClockScript(t *testing.T, dir, now string, deny bool, args ...string) (string, int, []string) {
	t.Helper()
	bin := filepath.Join(dir, "bin")
	os.MkdirAll(bin, 0o755)
	fake := `#!/bin/sh
case "$1" in
  +%s%N) cat "$FAKE_NOW" ;;
  -s) echo "$2" >> "$FAKE_SET"
      if [ -n "$FAKE_DENY" ]; then echo "date: cannot set date: Operation not permitted" >&2; exit 1; fi ;;
  *) echo "fake date: $*" >&2; exit 2 ;;
esac
`
	if err := os.WriteFile(filepath.Join(bin, "date"), []byte(fake), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "now"), []byte(now+"\n"), 0o644)
	set := filepath.Join(dir, "set")
	os.Remove(set)
	script := strings.Replace(clockScript, pathLine, "", 1)
	env := []string{"FAKE_NOW=" + filepath.Join(dir, "now"), "FAKE_SET=" + set}
	if deny {
		env = append(env, "FAKE_DENY=1")
	}
	out, code := runWithFakes(t, script, bin, env, args...)
	b, _ := os.ReadFile(set)
	return out, code, strings.Fields(string(b))
}

// runWithFakes runs script on this machine with the fake tools of bin
// first on PATH and env added, and returns its output (trimmed) and exit
// status.
func runWithFakes(t *testing.T, script, bin string, env []string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command("sh", append([]string{"-c", script, "eccheck"}, args...)...)
	cmd.Env = append(append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH")), env...)
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out)), code
}

func TestClockScript(t *testing.T) {
	dir := t.TempDir()
	rec := filepath.Join(dir, "root", "hostclock")
	record := func() string { b, _ := os.ReadFile(rec); return strings.TrimSpace(string(b)) }

	// +5s from nothing: the clock goes 5 s ahead, the record says so.
	out, code, sets := runClockScript(t, dir, "1700000000123456789", false, "set", "5000000000", rec)
	if code != 0 || out != "0" || len(sets) != 1 || sets[0] != "@1700000005.123456789" || record() != "5000000000" {
		t.Fatalf("clock/+5s/date -s 5 s ahead, recorded: exit %d %q, sets %v, record %q", code, out, sets, record())
	}
	// -2s while 5 s ahead: the host's clock (now 5 s ahead) moves back 7 s.
	out, code, sets = runClockScript(t, dir, "1700000005123456789", false, "set", "-2000000000", rec)
	if code != 0 || out != "5000000000" || len(sets) != 1 || sets[0] != "@1699999998.123456789" || record() != "-2000000000" {
		t.Fatalf("clock/-2s after +5s/moved back 7 s, recorded: exit %d %q, sets %v, record %q", code, out, sets, record())
	}
	// 0 puts it back and removes the record; the nanoseconds keep their zeros.
	out, code, sets = runClockScript(t, dir, "1699999998000000001", false, "set", "0", rec)
	if _, err := os.Stat(rec); code != 0 || out != "-2000000000" || len(sets) != 1 || sets[0] != "@1700000000.000000001" || err == nil {
		t.Fatalf("clock/back to 0/moved forward 2 s, record removed: exit %d %q, sets %v, stat %v", code, out, sets, err)
	}
	// 0 with no record (what Down runs everywhere) sets nothing.
	if out, code, sets = runClockScript(t, dir, "1700000000000000000", false, "set", "0", rec); code != 0 || out != "0" || len(sets) != 0 {
		t.Fatalf("clock/0 without a record/no date -s: exit %d %q, sets %v", code, out, sets)
	}
	// A probe sets the clock to what it reads, and records nothing.
	if out, code, sets = runClockScript(t, dir, "1700000000000000042", false, "probe", "0", rec); code != 0 || len(sets) != 1 || sets[0] != "@1700000000.000000042" || record() != "" {
		t.Fatalf("clock/probe/sets what it reads, records nothing: exit %d %q, sets %v, record %q", code, out, sets, record())
	}
	// Where date -s is refused: exit 4, said so, nothing recorded.
	out, code, _ = runClockScript(t, dir, "1700000000000000000", true, "set", "3000000000", rec)
	if code != 4 || !strings.Contains(out, "eccheck-denied: date: cannot set date: Operation not permitted") || record() != "" {
		t.Fatalf("clock/denied/exit 4, nothing recorded: exit %d %q, record %q", code, out, record())
	}
	// Refused while a record stands: the record is put back as it was.
	os.MkdirAll(filepath.Dir(rec), 0o755)
	os.WriteFile(rec, []byte("1000000000\n"), 0o644)
	if _, code, _ = runClockScript(t, dir, "1700000001000000000", true, "set", "3000000000", rec); code != 4 || record() != "1000000000" {
		t.Fatalf("clock/denied with a record/record kept: exit %d, record %q", code, record())
	}
	// A record without its newline is read.
	os.WriteFile(rec, []byte("1000000000"), 0o644)
	if out, code, sets = runClockScript(t, dir, "1700000001000000000", false, "set", "0", rec); code != 0 || out != "1000000000" || len(sets) != 1 || sets[0] != "@1700000000.000000000" {
		t.Fatalf("clock/record without newline/read: exit %d %q, sets %v", code, out, sets)
	}
	// A record that is not a number is refused, not trusted.
	for _, bad := range []string{"5s\n", "5-3\n", "-\n"} {
		os.WriteFile(rec, []byte(bad), 0o644)
		if out, code, sets = runClockScript(t, dir, "1700000000000000000", false, "set", "0", rec); code != 3 || len(sets) != 0 || !strings.Contains(out, "not an offset") {
			t.Fatalf("clock/bad record %q/refused: exit %d %q, sets %v", bad, code, out, sets)
		}
	}
}

func TestParseLeftoversClock(t *testing.T) {
	l, err := parseLeftovers("dir /var/lib/eccheck\nclock -2000000000\n")
	if err != nil || l.ClockOffset != -2e9 || l.Empty() || !strings.Contains(l.String(), "the host's clock, moved by -2s") {
		t.Fatalf("leftovers/clock/-2s parsed and listed: %+v, %v\n%s", l, err, l)
	}
	if _, err := parseLeftovers("clock soon\n"); err == nil {
		t.Errorf("leftovers/clock not a number/refused")
	}
}
