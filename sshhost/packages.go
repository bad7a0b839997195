// This file installs the Debian packages a system under test needs on a
// host, when they are missing.

package sshhost

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"
)

// packageScript installs the Debian package $1 with apt-get when one of
// the files $2... is missing (after an apt-get update when the package
// lists lack it), then checks that they are there. It prints
// "installed" when it installed the package, and fails (exit 3) with a
// line "eccheck-apt: WHY".
const packageScript = `set -e
` + pathLine + `pkg=$1; shift
missing=
for f in "$@"; do [ -e "$f" ] || missing=1; done
[ -n "$missing" ] || exit 0
log=$(mktemp)
export DEBIAN_FRONTEND=noninteractive
apt() { apt-get -o DPkg::Lock::Timeout=120 "$@"; }
if ! { apt install -y --no-install-recommends "$pkg" || { apt update && apt install -y --no-install-recommends "$pkg"; }; } >"$log" 2>&1; then
  echo "eccheck-apt: apt-get install $pkg failed: $(tail -n 3 "$log" | tr '\n' ' ')" >&2
  rm -f "$log"
  exit 3
fi
rm -f "$log"
for f in "$@"; do
  [ -e "$f" ] || { echo "eccheck-apt: $pkg is installed, but $f is missing" >&2; exit 3; }
done
echo installed
`

// EnsurePackage makes sure the Debian package pkg is installed on the
// host, as the files (absolute paths) it must have show: when one is
// missing it runs apt-get install (with an apt-get update first when the
// package lists lack it), which may take minutes: bound ctx accordingly.
// It reports whether it installed the package. Packages stay on the host
// ([Host.Down] leaves them).
func (h *Host) EnsurePackage(ctx context.Context, pkg string, files ...string) (bool, error) {
	if pkg == "" || strings.HasPrefix(pkg, "-") || len(files) == 0 {
		return false, fmt.Errorf("package %q with files %v: want a package name and the files it installs", pkg, files)
	}
	for _, f := range files {
		if !path.IsAbs(f) {
			return false, fmt.Errorf("package %s: file %q is not an absolute path", pkg, f)
		}
	}
	out, _, err := h.script(ctx, "install "+pkg, packageScript, append([]string{pkg}, files...)...)
	var ce *CommandError
	if errors.As(err, &ce) && ce.Status == 3 && strings.Contains(ce.Stderr, "eccheck-apt: ") {
		_, msg, _ := strings.Cut(ce.Stderr, "eccheck-apt: ")
		return false, fmt.Errorf("%s lacks %s, and eccheck could not install it: %s (install it yourself)", h.hostport, pkg, strings.TrimSpace(msg))
	}
	if err != nil {
		return false, fmt.Errorf("package %s: %w", pkg, err)
	}
	return strings.TrimSpace(out) == "installed", nil
}
