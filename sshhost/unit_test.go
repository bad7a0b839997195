package sshhost

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestQuote(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", "''"},
		{"plain", "plain"},
		{"/var/lib/eccheck/c1/n1.pid", "/var/lib/eccheck/c1/n1.pid"},
		{"KEY=v,1:2@h%+", "KEY=v,1:2@h%+"},
		{"two words", "'two words'"},
		{"it's", `'it'\''s'`},
		{"$HOME", "'$HOME'"},
		{"a;b|c&d", "'a;b|c&d'"},
		{"back`tick`", "'back`tick`'"},
		{"new\nline", "'new\nline'"},
		{"*", "'*'"},
	} {
		if got := Quote(tc.in); got != tc.want {
			t.Errorf("Quote(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
	if got, want := Command("sh", "-c", "echo $1", "x y"), `sh -c 'echo $1' 'x y'`; got != want {
		t.Errorf("Command = %s, want %s", got, want)
	}
}

// FuzzQuote checks that a shell given Quote(s) sees s, whatever s holds.
func FuzzQuote(f *testing.F) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		f.Skip("no sh")
	}
	for _, s := range []string{"", "a b", "it's", "'", `\`, "$(id)", "`id`", "a\nb", "*", "-n", "~root", "!x", "\"", "%s"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if strings.ContainsRune(s, 0) || !utf8.ValidString(s) {
			t.Skip()
		}
		out, err := exec.Command(sh, "-c", "printf %s "+Quote(s)).Output()
		if err != nil {
			t.Fatalf("sh -c printf %%s %s: %v", Quote(s), err)
		}
		if string(out) != s {
			t.Fatalf("Quote(%q) = %s: the shell saw %q", s, Quote(s), out)
		}
	})
}

// TestScriptsParse runs every script of the package through sh -n.
func TestScriptsParse(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	for name, s := range map[string]string{
		"partition": partitionScript, "heal": healScript, "removeRules": removeRulesScript,
		"netem": netemScript, "start": startScript, "signal": signalScript, "status": statusScript,
		"leftovers": leftoversScript, "killAll": killAllScript, "check": checkScript, "receive": receiveScript, "install": installScript,
	} {
		if out, err := exec.Command(sh, "-n", "-c", s).CombinedOutput(); err != nil {
			t.Errorf("%s script: sh -n: %v\n%s", name, err, out)
		}
	}
}

func TestHostPort(t *testing.T) {
	for _, tc := range []struct {
		host string
		port int
		want string
		err  bool
	}{
		{"h1", 0, "h1:22", false},
		{"h1", 2222, "h1:2222", false},
		{"h1:2200", 2222, "h1:2200", false},
		{"10.0.0.1", 0, "10.0.0.1:22", false},
		{"::1", 0, "[::1]:22", false},
		{"[::1]:2200", 0, "[::1]:2200", false},
		{"h1:x", 0, "", true},
		{"h1:0", 0, "", true},
		{":22", 0, "", true},
		{"", 0, "", true},
		{"h1", 70000, "", true},
	} {
		got, err := hostPort(tc.host, tc.port)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("hostPort(%q, %d) = %q, %v; want %q (error: %v)", tc.host, tc.port, got, err, tc.want, tc.err)
		}
	}
}

func TestNetemArgs(t *testing.T) {
	for _, tc := range []struct {
		name string
		l    Link
		want string
	}{
		{"delay", Link{Delay: 200 * time.Millisecond}, "delay 200000us"},
		{"delay/jitter", Link{Delay: 200 * time.Millisecond, Jitter: 50 * time.Millisecond}, "delay 200000us 50000us"},
		{"loss", Link{Loss: 20}, "loss 20%"},
		{"loss/fraction", Link{Loss: 0.5}, "loss 0.5%"},
		{"delay/loss", Link{Delay: time.Second, Loss: 100}, "delay 1000000us loss 100%"},
		{"refused/nothing", Link{}, ""},
		{"refused/negative", Link{Delay: -time.Millisecond}, ""},
		{"refused/jitter-alone", Link{Jitter: time.Millisecond}, ""},
		{"refused/jitter-above-delay", Link{Delay: time.Millisecond, Jitter: 2 * time.Millisecond}, ""},
		{"refused/loss-above-100", Link{Loss: 101}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := netemArgs(tc.l)
			if got != tc.want || (err != nil) != (tc.want == "") {
				t.Errorf("netemArgs(%+v) = %q, %v; want %q", tc.l, got, err, tc.want)
			}
		})
	}
}

func TestFailedStep(t *testing.T) {
	step, text := failedStep("Warning: x\neccheck-step netem: Error: Specified qdisc kind is unknown.\n")
	if step != "netem" || !strings.Contains(text, "qdisc kind is unknown") {
		t.Errorf("failedStep = %q, %q", step, text)
	}
	if step, _ := failedStep("plain failure"); step != "" {
		t.Errorf("failedStep of a plain failure = %q", step)
	}
}

func TestParseLeftovers(t *testing.T) {
	text := `chain
rule -A ECCHECK -s 10.0.0.2/32 -j DROP
rule -A ECCHECK -d 10.0.0.2/32 -j DROP
jump -A INPUT -j ECCHECK
jump -A OUTPUT -j ECCHECK
qdisc eth0: qdisc htb ecc: root refcnt 2 r2q 10 default 0
dir /var/lib/eccheck
dir /var/lib/eccheck/c1
process /var/lib/eccheck/c1/n1.pid 123 S
process /var/lib/eccheck/c1/n2.pid 124 T
`
	l, err := parseLeftovers(text)
	if err != nil {
		t.Fatal(err)
	}
	if !l.Chain || len(l.Rules) != 2 || len(l.Jumps) != 2 || len(l.Qdiscs) != 1 || len(l.Dirs) != 2 || len(l.Processes) != 2 {
		t.Fatalf("parsed %+v", l)
	}
	if p := l.Processes[1]; p.Cluster != "c1" || p.Name != "n2" || p.PID != 124 || p.State != Paused {
		t.Errorf("process = %+v", p)
	}
	if l.Empty() || !strings.Contains(l.String(), "process c1/n1 (pid 123, running)") {
		t.Errorf("String:\n%s", l)
	}
	if empty, err := parseLeftovers("\n"); err != nil || !empty.Empty() || empty.String() != "nothing" {
		t.Errorf("no lines: %+v, %v", empty, err)
	}
	for _, bad := range []string{"process /x.pid notanumber S", "process /x.pid 1", "what"} {
		if _, err := parseLeftovers(bad); err == nil {
			t.Errorf("parseLeftovers(%q) accepted it", bad)
		}
	}
}

func FuzzParseLeftovers(f *testing.F) {
	f.Add("chain\nrule -A ECCHECK -s 1.2.3.4/32 -j DROP\nprocess /var/lib/eccheck/c/n.pid 1 S\n")
	f.Add("dir /var/lib/eccheck\n")
	f.Fuzz(func(t *testing.T, s string) {
		l, err := parseLeftovers(s)
		if err == nil {
			_ = l.String()
		}
	})
}

func TestParseState(t *testing.T) {
	for _, tc := range []struct {
		in    string
		state ProcessState
		pid   int
		err   bool
	}{
		{"none", NoProc, 0, false},
		{"S 12", Running, 12, false},
		{"R 12", Running, 12, false},
		{"D 12", Running, 12, false},
		{"T 12", Paused, 12, false},
		{"exited 12", Exited, 12, false},
		{"S", "", 0, true},
		{"S x", "", 0, true},
		{"", "", 0, true},
	} {
		st, pid, err := parseState(tc.in)
		if st != tc.state || pid != tc.pid || (err != nil) != tc.err {
			t.Errorf("parseState(%q) = %q, %d, %v", tc.in, st, pid, err)
		}
	}
}

func TestStartArgv(t *testing.T) {
	argv, err := startArgv(ProcessSpec{Cluster: "c1", Name: "n1", Cmd: []string{"eccheck", "store", "serve"}, Env: []string{"A=1", "B=x y"}, User: "postgres"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/var/lib/eccheck/c1", "n1", "postgres", "", "eccheck store serve", "env", "A=1", "B=x y", "eccheck", "store", "serve"}
	if strings.Join(argv, "|") != strings.Join(want, "|") {
		t.Errorf("argv = %q, want %q", argv, want)
	}
	for name, spec := range map[string]ProcessSpec{
		"cluster/slash":    {Cluster: "a/b", Name: "n", Cmd: []string{"x"}},
		"cluster/dotdot":   {Cluster: "..", Name: "n", Cmd: []string{"x"}},
		"name/empty":       {Cluster: "c", Cmd: []string{"x"}},
		"cmd/empty":        {Cluster: "c", Name: "n"},
		"env/no-equals":    {Cluster: "c", Name: "n", Cmd: []string{"x"}, Env: []string{"A"}},
		"env/bad-key":      {Cluster: "c", Name: "n", Cmd: []string{"x"}, Env: []string{"1A=2"}},
		"dir/relative":     {Cluster: "c", Name: "n", Cmd: []string{"x"}, Dir: "tmp"},
		"name/leading-dot": {Cluster: "c", Name: ".n", Cmd: []string{"x"}},
	} {
		if _, err := startArgv(spec); err == nil {
			t.Errorf("%s: accepted %+v", name, spec)
		}
	}
}

func TestCommandError(t *testing.T) {
	long := strings.Repeat("line\n", 30) + "last"
	for _, tc := range []struct {
		name string
		err  *CommandError
		want []string
		not  []string
	}{
		{"status", &CommandError{Host: "u@h:22", Cmd: "false", Status: 1, Stderr: "bad\n"}, []string{"on u@h:22: false: exit status 1: bad"}, nil},
		{"signal", &CommandError{Host: "u@h:22", Cmd: "x", Status: -1, Signal: "KILL"}, []string{"killed by signal KILL"}, nil},
		{"stderr/cut", &CommandError{Host: "u@h:22", Cmd: "x", Status: 2, Stderr: long}, []string{"...", "last"}, []string{strings.Repeat("line\n  ", 11)}},
		{"cmd/cut", &CommandError{Host: "u@h:22", Cmd: strings.Repeat("c", 300) + "\nmore", Status: 2}, []string{strings.Repeat("c", 160) + "..."}, []string{"more"}},
		{"hint", &CommandError{Host: "u@h:22", Cmd: "x", Status: 1, Hint: "do this", Err: ErrNoSudo}, []string{"(do this)"}, nil},
		{"lost", &CommandError{Host: "u@h:22", Cmd: "x", Status: -1, Err: errors.New("connection lost")}, []string{"connection lost"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.err.Error()
			for _, w := range tc.want {
				if !strings.Contains(s, w) {
					t.Errorf("%q lacks %q", s, w)
				}
			}
			for _, w := range tc.not {
				if strings.Contains(s, w) {
					t.Errorf("%q holds %q", s, w)
				}
			}
		})
	}
	if !errors.Is(&CommandError{Err: ErrNoSudo}, ErrNoSudo) {
		t.Error("a CommandError does not unwrap to its Err")
	}
}

func TestConfigWarning(t *testing.T) {
	if (Config{}).Warning() != "" || (Config{Insecure: true}).Warning() == "" {
		t.Error("only an insecure config warns")
	}
}

// TestProcessScriptsLocally runs the process scripts on this machine, in
// a temporary directory, as the SSH tests run them on a host: start,
// status, pause, resume, kill, leftovers.
func TestProcessScriptsLocally(t *testing.T) {
	for _, tool := range []string{"sh", "setsid", "pkill", "ps", "sed"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("no %s here", tool)
		}
	}
	if _, err := exec.Command("sh", "-c", "test -r /proc/$$/stat").CombinedOutput(); err != nil {
		t.Skip("no /proc here")
	}
	root := t.TempDir()
	run := func(script string, args ...string) (string, error) {
		t.Helper()
		out, err := exec.Command("sh", append([]string{"-c", script, "eccheck"}, args...)...).Output()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			err = fmt.Errorf("%w: %s", err, ee.Stderr)
		}
		return string(out), err
	}
	dir := root + "/c1"
	pidf := dir + "/n1.pid"
	t.Cleanup(func() { run(killAllScript, root) })
	out, err := run(startScript, dir, "n1", "", "", "sleep 1000", "sleep", "1000")
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	pid := strings.Fields(out)[0]
	state := func() string {
		t.Helper()
		out, err := run(statusScript, pidf)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(out)
	}
	if s := state(); s != "S "+pid && s != "R "+pid {
		t.Fatalf("status = %q, want S %s", s, pid)
	}
	if _, err := run(startScript, dir, "n1", "", "", "sleep 1000", "sleep", "1000"); err == nil || !strings.Contains(err.Error(), "already runs") {
		t.Errorf("second start: %v", err)
	}
	for _, step := range []struct{ sig, want, state string }{{"STOP", "stopped", "T "}, {"CONT", "running", "S "}, {"KILL", "gone", "exited "}} {
		if _, err := run(signalScript, pidf, step.sig, step.want); err != nil {
			t.Fatalf("SIG%s: %v", step.sig, err)
		}
		if s := state(); s != step.state+pid && !(step.state == "S " && s == "R "+pid) {
			t.Fatalf("after SIG%s: status %q, want %s%s", step.sig, s, step.state, pid)
		}
	}
	if _, err := run(signalScript, pidf, "KILL", "gone"); err == nil || !strings.Contains(err.Error(), "eccheck-not-running") {
		t.Errorf("signal to a dead process: %v", err)
	}
	if s := state(); s != "exited "+pid {
		t.Errorf("status after kill = %q", s)
	}
	if out, _ := run(statusScript, dir+"/never.pid"); strings.TrimSpace(out) != "none" {
		t.Errorf("status without a pidfile = %q", out)
	}
	log, err := os.ReadFile(dir + "/n1.log")
	if err != nil || !strings.Contains(string(log), "start: sleep 1000") {
		t.Errorf("log = %q, %v", log, err)
	}
	// A process that is alive shows in the leftovers; Down's kill ends it.
	if _, err := run(startScript, dir, "n2", "", "", "sleep", "sleep", "1000"); err != nil {
		t.Fatal(err)
	}
	out, err = run(leftoversScript, root)
	if err != nil {
		t.Fatal(err)
	}
	l, err := parseLeftovers(out)
	if err != nil || len(l.Processes) != 1 || l.Processes[0].Name != "n2" || len(l.Dirs) != 2 {
		t.Fatalf("leftovers = %+v, %v (script said %q)", l, err, out)
	}
	if _, err := run(killAllScript, root); err != nil {
		t.Fatal(err)
	}
	out, _ = run(leftoversScript, root)
	if l, _ := parseLeftovers(out); len(l.Processes) != 0 {
		t.Fatalf("leftovers after killing all: %+v", l)
	}
}
