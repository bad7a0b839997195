package docker

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// Overrides maps an image role (ecstore, base, postgres) to an image of the
// user's own (from their registry) that eccheck runs instead of building
// one. They live in a small JSON file, [OverridesFile].
type Overrides map[string]string

// OverridesFile is where the overrides live: $ECCHECK_IMAGES_FILE, else
// images.json in eccheck's user configuration directory
// (~/.config/eccheck/images.json on Linux).
func OverridesFile() string {
	if f := os.Getenv("ECCHECK_IMAGES_FILE"); f != "" {
		return f
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		dir = os.TempDir()
	}
	return filepath.Join(dir, "eccheck", "images.json")
}

// LoadOverrides reads the overrides file; a missing file means none.
func LoadOverrides() (Overrides, error) {
	b, err := os.ReadFile(OverridesFile())
	if errors.Is(err, os.ErrNotExist) {
		return Overrides{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("image overrides: %w", err)
	}
	ov := Overrides{}
	if err := json.Unmarshal(b, &ov); err != nil {
		return nil, fmt.Errorf("image overrides %s: %w", OverridesFile(), err)
	}
	return ov, nil
}

// Save writes the overrides file.
func (ov Overrides) Save() error {
	f := OverridesFile()
	if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
		return fmt.Errorf("image overrides: %w", err)
	}
	b, _ := json.MarshalIndent(ov, "", "  ")
	if err := os.WriteFile(f, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("image overrides: %w", err)
	}
	return nil
}

// refPattern is a conservative image reference: registry host, path,
// optional tag and digest.
var refPattern = regexp.MustCompile(`^[a-z0-9]([a-z0-9._:/-]*[a-z0-9])?(@sha256:[0-9a-f]{64})?$`)

// ParseOverride parses NAME=REF, NAME one of roles; an empty REF removes
// the override.
func ParseOverride(s string, roles []string) (role, ref string, err error) {
	role, ref, ok := strings.Cut(s, "=")
	if !ok {
		return "", "", fmt.Errorf("--image %q: want NAME=REF with NAME one of %s", s, strings.Join(roles, ", "))
	}
	if !slices.Contains(roles, role) {
		return "", "", fmt.Errorf("--image %q: unknown image %q (want %s)", s, role, strings.Join(roles, ", "))
	}
	if ref != "" && (len(ref) > 255 || !refPattern.MatchString(ref)) {
		return "", "", fmt.Errorf("--image %q: %q is not an image reference", s, ref)
	}
	return role, ref, nil
}
