package docker

import (
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestMirrorFromAptSources(t *testing.T) {
	tests := []struct {
		name    string
		files   map[string]string
		want    string
		wantErr bool
	}{
		{
			name: "mirror/deb822 with security first/the suite's archive",
			files: map[string]string{"sources.list.d/debian.sources": `Types: deb
URIs: http://security.example/debian-security
Suites: bookworm-security
Components: main

Types: deb
# a comment
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
`},
			want: "http://mirror.example/debian",
		},
		{
			name:  "mirror/one-line with options/its URI",
			files: map[string]string{"sources.list": "# x\ndeb-src http://src.example/debian bookworm main\ndeb [arch=amd64 signed-by=/k.gpg] http://one.example/debian bookworm main\n"},
			want:  "http://one.example/debian",
		},
		{
			name:  "mirror/another suite only/first non-security archive",
			files: map[string]string{"sources.list": "deb http://sec.example/debian-security trixie-security main\ndeb http://t.example/debian trixie main\n"},
			want:  "http://t.example/debian",
		},
		{
			name:    "mirror/no sources/error",
			files:   map[string]string{},
			wantErr: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			for name, body := range tt.files {
				p := filepath.Join(root, "etc/apt", name)
				os.MkdirAll(filepath.Dir(p), 0o755)
				if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := MirrorFromAptSources(root, "bookworm")
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Fatalf("got %q, %v; want %q (error %v)", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestParseOverride(t *testing.T) {
	tests := []struct {
		in, role, ref string
		wantErr       bool
	}{
		{"postgres=registry.example.com:5000/pg:15", "postgres", "registry.example.com:5000/pg:15", false},
		{"ecstore=", "ecstore", "", false},
		{"redis=x", "", "", true},
		{"base", "", "", true},
		{"base=Bad Ref;rm", "", "", true},
	}
	for _, tt := range tests {
		t.Run("override/"+tt.in, func(t *testing.T) {
			role, ref, err := ParseOverride(tt.in, []string{"ecstore", "base", "postgres"})
			if (err != nil) != tt.wantErr || role != tt.role || ref != tt.ref {
				t.Fatalf("got %q %q %v; want %q %q error %v", role, ref, err, tt.role, tt.ref, tt.wantErr)
			}
		})
	}
}

func TestOverridesFile(t *testing.T) {
	t.Setenv("ECCHECK_IMAGES_FILE", filepath.Join(t.TempDir(), "sub", "images.json"))
	ov, err := LoadOverrides()
	if err != nil || len(ov) != 0 {
		t.Fatalf("overrides/missing file/none: %v %v", ov, err)
	}
	ov["base"] = "me/base:1"
	if err := ov.Save(); err != nil {
		t.Fatal(err)
	}
	back, err := LoadOverrides()
	if err != nil || back["base"] != "me/base:1" {
		t.Fatalf("overrides/saved/read back: %v %v", back, err)
	}
}

func TestValidName(t *testing.T) {
	for _, tt := range []struct {
		name string
		ok   bool
	}{{"demo", true}, {"a_1-b", true}, {"", false}, {"Demo", false}, {"-x", false}, {"a/b", false}, {"a b", false}, {"abcdefghijabcdefghijabcdefghijx", false}} {
		if err := ValidName(tt.name); (err == nil) != tt.ok {
			t.Errorf("name/%q/valid=%v: got %v", tt.name, tt.ok, err)
		}
	}
}

func TestHostAddrAndSubnets(t *testing.T) {
	p := netip.MustParsePrefix("172.30.4.0/24")
	if got := hostAddr(p, 11); got != netip.MustParseAddr("172.30.4.11") {
		t.Errorf("address/11th of %s/.11: got %s", p, got)
	}
	c := subnetCandidates()
	if len(c) != 64 || c[0] != netip.MustParsePrefix("172.30.0.0/24") || c[63] != netip.MustParsePrefix("172.31.31.0/24") {
		t.Errorf("subnets/candidates/172.30-31.0-31.0/24: got %d, first %v last %v", len(c), c[0], c[len(c)-1])
	}
}

func TestIsStatic(t *testing.T) {
	ok, err := IsStatic("/bin/sh")
	if err != nil || ok {
		t.Errorf("static/dynamic /bin/sh/false: got %v, %v", ok, err)
	}
	if _, err := IsStatic(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("static/missing file/error: got none")
	}
}

// TestFreePorts: distinct ports, below the kernel's ephemeral range when
// there is room there, and free once released.
func TestFreePorts(t *testing.T) {
	// A port another cluster publishes is never picked, even when free.
	skip := map[int]bool{}
	for p := 10000; p < 40000; p += 2 {
		skip[p] = true
	}
	ports, err := freePorts(20, skip)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ports {
		if skip[p] {
			t.Fatalf("port %d picked though another cluster publishes it", p)
		}
	}
	seen := map[int]bool{}
	for _, p := range ports {
		if seen[p] {
			t.Fatalf("port %d picked twice: %v", p, ports)
		}
		seen[p] = true
		if low := ephemeralLow(); low > 11000 && (p < 10000 || p >= low) {
			t.Errorf("port %d outside [10000, %d)", p, low)
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			t.Errorf("port %d not free after freePorts: %v", p, err)
			continue
		}
		l.Close()
	}
}

func TestParseFaults(t *testing.T) {
	byIP := map[string]string{"172.30.0.12": "n2", "172.30.0.13": "n3"}
	text := `-N ECCHECK
-A ECCHECK -s 172.30.0.13/32 -j DROP
-A ECCHECK -s 172.30.0.12/32 -j DROP
-N ECCHECK-LOSS
-A ECCHECK-LOSS -s 172.30.0.12/32 -m statistic --mode random --probability 0.20000000019 -j DROP
qdisc tbf 8001: root refcnt 2 rate 1Mbit burst 4Kb lat 400ms
`
	var f NodeFaults
	parseFaults(&f, text, byIP)
	if strings.Join(f.Drops, ",") != "n2,n3" {
		t.Errorf("status/drop rules/names n2,n3: got %v", f.Drops)
	}
	if p := f.Loss["n2"]; p < 0.19 || p > 0.21 || len(f.Loss) != 1 {
		t.Errorf("status/loss rule/n2 at 0.2: got %v", f.Loss)
	}
	if !strings.HasPrefix(f.Qdisc, "tbf 8001: root") {
		t.Errorf("status/tbf qdisc/reported: got %q", f.Qdisc)
	}
	var none NodeFaults
	parseFaults(&none, "qdisc noqueue 0: root refcnt 2\n", byIP)
	if none.Qdisc != "" || none.Drops != nil || none.Loss != nil {
		t.Errorf("status/no faults/nothing reported: got %+v", none)
	}
}

func TestValidRate(t *testing.T) {
	for rate, ok := range map[string]bool{"1mbit": true, "500kbit": true, "1.5mbit": true, "fast": false, "1mbit; rm": false, "": false} {
		if err := ValidRate(rate); (err == nil) != ok {
			t.Errorf("rate/%q/valid=%v: got %v", rate, ok, err)
		}
	}
}
