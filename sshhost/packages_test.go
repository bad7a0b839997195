package sshhost

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPackageScript runs packageScript on this machine with a fake
// apt-get first on PATH (the script's own PATH line removed): the fake
// logs its calls, and "installs" by creating $FAKE_FILE, failing as
// $FAKE_FAIL says (install, first-install, or nothing).
func TestPackageScript(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	os.MkdirAll(bin, 0o755)
	fake := `#!/bin/sh
echo "$*" >> "$FAKE_LOG"
while [ "$1" = -o ]; do shift 2; done
case "$1" in
  update) exit 0 ;;
  install)
    if [ "$FAKE_FAIL" = install ]; then echo "E: Unable to locate package" >&2; exit 100; fi
    if [ "$FAKE_FAIL" = first-install ] && ! grep -q update "$FAKE_LOG"; then echo "E: Unable to locate package" >&2; exit 100; fi
    [ "$FAKE_FAIL" = nofile ] || touch "$FAKE_FILE" ;;
esac
`
	if err := os.WriteFile(filepath.Join(bin, "apt-get"), []byte(fake), 0o755); err != nil {
		t.Fatal(err)
	}
	script := strings.Replace(packageScript, pathLine, "", 1)
	run := func(fail string, files ...string) (string, int, string) {
		t.Helper()
		logf := filepath.Join(dir, "apt.log")
		os.Remove(logf)
		out, code := runWithFakes(t, script, bin, []string{"FAKE_LOG=" + logf, "FAKE_FILE=" + files[0], "FAKE_FAIL=" + fail}, append([]string{"postgresql-15"}, files...)...)
		calls, _ := os.ReadFile(logf)
		return out, code, strings.TrimSpace(string(calls))
	}
	present := filepath.Join(dir, "present")
	os.WriteFile(present, nil, 0o644)
	if out, code, calls := run("", present); code != 0 || out != "" || calls != "" {
		t.Errorf("package/present/no apt-get: exit %d %q, calls %q", code, out, calls)
	}
	missing := filepath.Join(dir, "postgres")
	if out, code, calls := run("", missing); code != 0 || out != "installed" || calls != "-o DPkg::Lock::Timeout=120 install -y --no-install-recommends postgresql-15" {
		t.Errorf("package/missing/installed: exit %d %q, calls %q", code, out, calls)
	}
	os.Remove(missing)
	if out, code, calls := run("first-install", missing); code != 0 || out != "installed" || !strings.Contains(calls, "update") {
		t.Errorf("package/lists lack it/update, then installed: exit %d %q, calls %q", code, out, calls)
	}
	os.Remove(missing)
	if out, code, _ := run("install", missing); code != 3 || !strings.Contains(out, "eccheck-apt: apt-get install postgresql-15 failed: E: Unable to locate package") {
		t.Errorf("package/apt-get fails/said: exit %d %q", code, out)
	}
	if out, code, _ := run("nofile", missing); code != 3 || !strings.Contains(out, "is installed, but "+missing+" is missing") {
		t.Errorf("package/installed without the file/said: exit %d %q", code, out)
	}
}
