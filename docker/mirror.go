package docker

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// aptSource is one "deb" source of the host's apt configuration.
type aptSource struct {
	uris, suites []string
}

// MirrorFromAptSources returns the Debian mirror the host's apt uses, read
// from root/etc/apt/sources.list.d/*.sources (deb822 "URIs:" lines),
// root/etc/apt/sources.list.d/*.list and root/etc/apt/sources.list ("deb"
// lines). It prefers a source that lists suite, then any source that is
// not a security archive. root "" means /.
func MirrorFromAptSources(root, suite string) (string, error) {
	if root == "" {
		root = "/"
	}
	dir := filepath.Join(root, "etc/apt")
	var srcs []aptSource
	deb822, _ := filepath.Glob(filepath.Join(dir, "sources.list.d/*.sources"))
	for _, f := range deb822 {
		b, err := os.ReadFile(f)
		if err != nil {
			return "", fmt.Errorf("read apt sources: %w", err)
		}
		srcs = append(srcs, parseDeb822(b)...)
	}
	lists, _ := filepath.Glob(filepath.Join(dir, "sources.list.d/*.list"))
	lists = append([]string{filepath.Join(dir, "sources.list")}, lists...)
	for _, f := range lists {
		b, err := os.ReadFile(f)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("read apt sources: %w", err)
		}
		srcs = append(srcs, parseOneLine(b)...)
	}
	for _, s := range srcs {
		if slices.Contains(s.suites, suite) && len(s.uris) > 0 {
			return s.uris[0], nil
		}
	}
	for _, s := range srcs {
		for _, u := range s.uris {
			if !strings.Contains(u, "security") {
				return u, nil
			}
		}
	}
	return "", fmt.Errorf("no Debian mirror in %s (sources.list.d/*.sources URIs:, or deb lines in sources.list)", dir)
}

// parseDeb822 reads the stanzas of a .sources file.
func parseDeb822(b []byte) []aptSource {
	var out []aptSource
	var cur aptSource
	isDeb, enabled := false, true
	flush := func() {
		if isDeb && enabled && len(cur.uris) > 0 {
			out = append(out, cur)
		}
		cur, isDeb, enabled = aptSource{}, false, true
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			flush()
			continue
		}
		if strings.HasPrefix(line, "#") || strings.HasPrefix(line, " ") || strings.HasPrefix(line, "\t") {
			continue
		}
		key, val, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		fields := strings.Fields(val)
		switch strings.ToLower(strings.TrimSpace(key)) {
		case "types":
			isDeb = slices.Contains(fields, "deb")
		case "uris":
			cur.uris = fields
		case "suites":
			cur.suites = fields
		case "enabled":
			enabled = strings.TrimSpace(val) != "no"
		}
	}
	flush()
	return out
}

// parseOneLine reads "deb [options] URI suite components" lines.
func parseOneLine(b []byte) []aptSource {
	var out []aptSource
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 3 || f[0] != "deb" {
			continue
		}
		f = f[1:]
		if strings.HasPrefix(f[0], "[") {
			for len(f) > 0 && !strings.HasSuffix(f[0], "]") {
				f = f[1:]
			}
			if len(f) > 0 {
				f = f[1:]
			}
		}
		if len(f) < 2 {
			continue
		}
		out = append(out, aptSource{uris: []string{f[0]}, suites: []string{f[1]}})
	}
	return out
}
