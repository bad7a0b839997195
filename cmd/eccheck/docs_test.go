package main

import (
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// The README and docs/ show eccheck commands in code blocks and inline code.
// These tests hold them to the real flags both ways: every flag a document
// shows exists (and is not a hidden old spelling), and each synopsis in the
// README lists every flag its command has, so the two cannot drift apart.

// docCommand is one eccheck command line found in a document.
type docCommand struct {
	file, text string
	line       int
	synopsis   bool // a code-block line with [optional] parts
}

var (
	flagToken   = regexp.MustCompile(`(?:^|[\s\[|(])(--[a-z][a-z0-9-]*|-[a-zA-Z])\b`)
	inlineCode  = regexp.MustCompile("`([^`]+)`")
	commandHead = regexp.MustCompile(`^(?:\$ )?(?:go run \./cmd/eccheck|eccheck)(?:\s|$)`)
)

func docFiles(t *testing.T) []string {
	t.Helper()
	files := []string{"../../README.md"}
	more, err := filepath.Glob("../../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	if len(more) == 0 {
		t.Fatal("no docs/*.md found")
	}
	return append(files, more...)
}

// docCommands finds the eccheck commands in a Markdown file: lines of code
// blocks (with their indented or backslash continuation lines) and inline
// code spans that start with eccheck.
func docCommands(t *testing.T, path string) []docCommand {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	name := filepath.Base(path)
	lines := strings.Split(string(b), "\n")
	var out []docCommand
	inBlock := false
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if strings.HasPrefix(strings.TrimSpace(l), "```") {
			inBlock = !inBlock
			continue
		}
		if inBlock {
			s := strings.TrimSpace(l)
			if !commandHead.MatchString(s) {
				continue
			}
			c := docCommand{file: name, line: i + 1, text: s}
			// Continuation: a trailing backslash, or indented lines of
			// optional parts under a synopsis.
			for i+1 < len(lines) {
				next := lines[i+1]
				ns := strings.TrimSpace(next)
				cont := strings.HasSuffix(c.text, "\\") ||
					(strings.HasPrefix(next, " ") && ns != "" && !commandHead.MatchString(ns) && !strings.HasPrefix(ns, "```") &&
						(strings.HasPrefix(ns, "[") || strings.HasPrefix(ns, "--") || strings.Contains(ns, ":  ") || strings.HasPrefix(ns, "postgres:") || strings.HasPrefix(ns, "ecstore:")))
				if !cont {
					break
				}
				c.text = strings.TrimSuffix(c.text, "\\") + " " + ns
				i++
			}
			if i := strings.Index(c.text, " #"); i >= 0 {
				c.text = c.text[:i] // a shell comment
			}
			c.synopsis = strings.Contains(c.text, "[")
			out = append(out, c)
			continue
		}
		for _, m := range inlineCode.FindAllStringSubmatch(l, -1) {
			if commandHead.MatchString(m[1]) {
				out = append(out, docCommand{file: name, line: i + 1, text: m[1]})
			}
		}
	}
	return out
}

// resolve finds the commands a document line names: "eccheck cluster
// up|down NAME" names two.
func resolve(root *cobra.Command, text string) []*cobra.Command {
	words := strings.Fields(commandHead.ReplaceAllString(text, "eccheck "))[1:]
	cmd := root
	for i, w := range words {
		if strings.HasPrefix(w, "-") || strings.HasPrefix(w, "[") {
			break
		}
		var next *cobra.Command
		for _, c := range cmd.Commands() {
			if c.Name() == w {
				next = c
			}
		}
		if next != nil {
			cmd = next
			continue
		}
		if strings.Contains(w, "|") && i > 0 {
			var all []*cobra.Command
			for _, part := range strings.Split(w, "|") {
				for _, c := range cmd.Commands() {
					if c.Name() == part {
						all = append(all, c)
					}
				}
			}
			if len(all) == len(strings.Split(w, "|")) {
				return all
			}
		}
		break
	}
	return []*cobra.Command{cmd}
}

func lookupFlag(c *cobra.Command, tok string) *pflag.Flag {
	if strings.HasPrefix(tok, "--") {
		return c.Flags().Lookup(tok[2:])
	}
	return c.Flags().ShorthandLookup(tok[1:])
}

func TestDocsShowOnlyRealFlags(t *testing.T) {
	root := newRootCmd(&app{stdout: io.Discard, stderr: io.Discard})
	n := 0
	for _, path := range docFiles(t) {
		for _, dc := range docCommands(t, path) {
			cmds := resolve(root, dc.text)
			if len(cmds) == 1 && cmds[0] == root {
				t.Errorf("%s:%d: %q names no eccheck command", dc.file, dc.line, dc.text)
				continue
			}
			for _, m := range flagToken.FindAllStringSubmatch(dc.text, -1) {
				tok := m[1]
				if tok == "-h" || tok == "--help" {
					continue
				}
				n++
				var found, hidden bool
				for _, c := range cmds {
					c.InitDefaultHelpFlag()
					if f := lookupFlag(c, tok); f != nil {
						found = true
						hidden = hidden || f.Hidden
					}
				}
				switch {
				case !found:
					t.Errorf("%s:%d: %s has no flag %s (in %q)", dc.file, dc.line, cmds[0].CommandPath(), tok, dc.text)
				case hidden:
					t.Errorf("%s:%d: %s is a hidden old spelling of %s; show the current one (in %q)", dc.file, dc.line, tok, cmds[0].CommandPath(), dc.text)
				}
			}
		}
	}
	if n < 100 {
		t.Fatalf("found only %d flags in the documents' commands: the parser is broken", n)
	}
}

func TestReadmeSynopsesListEveryFlag(t *testing.T) {
	root := newRootCmd(&app{stdout: io.Discard, stderr: io.Discard})
	shown := map[*cobra.Command]map[string]bool{}
	var synopses []docCommand
	for _, dc := range docCommands(t, "../../README.md") {
		if !dc.synopsis {
			continue
		}
		synopses = append(synopses, dc)
		for _, c := range resolve(root, dc.text) {
			if shown[c] == nil {
				shown[c] = map[string]bool{}
			}
			for _, m := range flagToken.FindAllStringSubmatch(dc.text, -1) {
				if f := lookupFlag(c, m[1]); f != nil {
					shown[c][f.Name] = true
				}
			}
		}
	}
	want := []string{"test", "check", "report", "matrix", "images build"}
	for _, w := range want {
		c, _, err := root.Find(strings.Fields(w))
		if err != nil || shown[c] == nil {
			t.Errorf("the README has no synopsis of eccheck %s", w)
		}
	}
	testCmd, _, _ := root.Find([]string{"test"})
	for _, dc := range synopses {
		if strings.HasSuffix(strings.TrimSpace(dc.text), "...") {
			continue // a synopsis that says it is partial
		}
		inherits := strings.Contains(dc.text, "the run flags of eccheck test")
		for _, c := range resolve(root, dc.text) {
			var missing []string
			c.Flags().VisitAll(func(f *pflag.Flag) {
				if f.Hidden || f.Name == "help" || shown[c][f.Name] {
					return
				}
				if inherits && testCmd.Flags().Lookup(f.Name) != nil && shown[testCmd][f.Name] {
					return
				}
				missing = append(missing, "--"+f.Name)
			})
			sort.Strings(missing)
			if len(missing) > 0 {
				t.Errorf("README.md:%d: the synopsis of %s does not show %s", dc.line, c.CommandPath(), strings.Join(missing, ", "))
			}
		}
	}
}
