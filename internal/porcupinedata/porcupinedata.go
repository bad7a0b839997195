// Package porcupinedata locates the histories Porcupine ships in its
// test_data (Jepsen etcd logs and kv files) and the verdicts Porcupine's
// own tests expect of them, for the tests that check eccheck against them.
package porcupinedata

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// Dir returns the directory of the porcupine module (in the module cache).
func Dir(t testing.TB) string {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go is not on PATH, so the porcupine module cannot be located")
	}
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/anishathalye/porcupine").Output()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		t.Fatalf("go list porcupine: %v: %s", err, ee.Stderr)
	}
	if err != nil {
		t.Fatalf("go list porcupine: %v", err)
	}
	dir := strings.TrimSpace(string(out))
	if dir == "" {
		t.Fatal("go list porcupine: module not downloaded (run go mod download)")
	}
	return dir
}

// JepsenVerdicts returns, for each etcd log that Porcupine's tests check
// (etcd_000.log, ...), whether they expect it linearizable, as read from
// their checkJepsen calls.
func JepsenVerdicts(t testing.TB, dir string) map[string]bool {
	t.Helper()
	src, err := os.ReadFile(filepath.Join(dir, "porcupine_test.go"))
	if err != nil {
		t.Fatal(err)
	}
	expect := map[string]bool{}
	for _, m := range regexp.MustCompile(`checkJepsen\(t, (\d+), (true|false)\)`).FindAllSubmatch(src, -1) {
		n, _ := strconv.Atoi(string(m[1]))
		expect[fmt.Sprintf("etcd_%03d.log", n)] = string(m[2]) == "true"
	}
	if len(expect) == 0 {
		t.Fatalf("no checkJepsen expectations in %s/porcupine_test.go", dir)
	}
	return expect
}

// KVFiles returns the path of each kv history and whether it is
// linearizable: Porcupine names the ones that are not "-bad".
func KVFiles(t testing.TB, dir string) map[string]bool {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "test_data", "kv", "*.txt"))
	if err != nil || len(files) == 0 {
		t.Fatalf("kv files in %s: %v, %v", dir, files, err)
	}
	out := map[string]bool{}
	for _, f := range files {
		out[f] = !strings.HasSuffix(strings.TrimSuffix(filepath.Base(f), ".txt"), "-bad")
	}
	return out
}
