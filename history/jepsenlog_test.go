package history

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadJepsenLog(t *testing.T) {
	t.Run("log/cas register/ops in order, values as EDN", func(t *testing.T) {
		in := "INFO  jepsen.util - 0\t:invoke\t:read\tnil\n" +
			"2017-01-01 INFO  jepsen.core - worker 1 starting\n" +
			"INFO  jepsen.util - 1   :invoke :cas    [1 4]\n" +
			"INFO  jepsen.util - 0\t:ok\t:read\t3\n" +
			"INFO  jepsen.util - 1\t:info\t:cas\t:timed-out\n" +
			"INFO  jepsen.util - :nemesis\t:info\t:start\tnil\n"
		h, warnings, err := ReadJepsenLog(strings.NewReader(in), "etcd.log")
		if err != nil {
			t.Fatal(err)
		}
		if len(h) != 5 || h[1].F != "cas" || h[1].Value.String() != "[1,4]" || h[2].Value.String() != "3" || h[3].Type != Info || h[4].Process != Nemesis {
			t.Fatalf("history %v", h)
		}
		if h[3].Time != 3 || len(warnings) != 1 || !strings.Contains(warnings[0], "skipped 1 line") {
			t.Fatalf("time %d, warnings %q", h[3].Time, warnings)
		}
	})
	t.Run("log/no operation lines/error naming the shape", func(t *testing.T) {
		_, _, err := ReadJepsenLog(strings.NewReader("hello\n"), "x.log")
		if err == nil || !strings.Contains(err.Error(), "no jepsen.util operation lines") {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("log/completion without invocation/error names the line", func(t *testing.T) {
		_, _, err := ReadJepsenLog(strings.NewReader("INFO  jepsen.util - 0\t:invoke\t:read\tnil\nINFO  jepsen.util - 1\t:ok\t:read\t3\n"), "x.log")
		if err == nil || !strings.Contains(err.Error(), "x.log:2:") {
			t.Fatalf("err %v", err)
		}
	})
}

func TestDetectFormat(t *testing.T) {
	for _, tc := range []struct{ name, file, head, want string }{
		{"format/json line/jsonl", "h", `{"process":0,"type":"invoke","f":"read"}`, FormatJSONL},
		{"format/edn map/edn", "c01-ok.txt", `{:process 0, :type :invoke, :f :get}`, FormatEDN},
		{"format/edn vector/edn", "h.txt", `[{:process 0}]`, FormatEDN},
		{"format/jepsen record/edn", "h", `#jepsen.history.Op{:index 0}`, FormatEDN},
		{"format/edn extension/edn whatever it holds", "h.edn", `{"a":1}`, FormatEDN},
		{"format/jepsen log/log", "etcd_000.log", "INFO  jepsen.util - 0\t:invoke\t:read\tnil\n", FormatJepsenLog},
		{"format/jsonl extension/jsonl", "h.jsonl", "INFO  jepsen.util - 0\t:invoke\t:read\tnil\n", FormatJSONL},
		{"format/garbage/jsonl, whose reader names the line", "h", "hello", FormatJSONL},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := DetectFormat(tc.file, []byte(tc.head)); got != tc.want {
				t.Fatalf("DetectFormat(%q, %q) = %s, want %s", tc.file, tc.head, got, tc.want)
			}
		})
	}
}

func TestReadFileFormats(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	t.Run("read/edn without the extension/read as EDN", func(t *testing.T) {
		h, _, err := ReadFile(write("kv.txt", "{:process 0, :type :invoke, :f :get, :key \"1\", :value nil}\n{:process 0, :type :ok, :f :get, :key \"1\", :value \"x\"}\n"))
		if err != nil || len(h) != 2 || h[1].Value.String() != `"x"` {
			t.Fatalf("h %v, err %v", h, err)
		}
	})
	t.Run("read/jepsen log/read as a log", func(t *testing.T) {
		h, _, err := ReadFile(write("etcd.log", "INFO  jepsen.util - 0\t:invoke\t:write\t1\nINFO  jepsen.util - 0\t:ok\t:write\t1\n"))
		if err != nil || len(h) != 2 {
			t.Fatalf("h %v, err %v", h, err)
		}
	})
	for _, text := range []string{"", "\n\n  \n"} {
		t.Run("read/empty file/error that says empty", func(t *testing.T) {
			_, _, err := ReadFile(write("empty.jsonl", text))
			if err == nil || !strings.Contains(err.Error(), "is empty") {
				t.Fatalf("err %v", err)
			}
		})
	}
}
