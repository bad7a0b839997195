package ecstore

import (
	"strings"
	"testing"

	"github.com/eccheck/eccheck/db"
)

// TestCell parses the configurations of a report card for 3 nodes.
func TestCell(t *testing.T) {
	good := []struct {
		spec string
		want Settings
	}{
		{"raft", Settings{Mode: "raft", W: 1, R: 1, PrimaryReads: "any"}},
		{"lww", Settings{Mode: "lww", W: 1, R: 1, PrimaryReads: "any"}},
		{"lww:w1r1", Settings{Mode: "lww", W: 1, R: 1, PrimaryReads: "any"}},
		{"lww:w2r2", Settings{Mode: "lww", W: 2, R: 2, PrimaryReads: "any"}},
		{"lww:n3w2r2", Settings{Mode: "lww", N: 3, W: 2, R: 2, PrimaryReads: "any"}},
		{"hlc", Settings{Mode: "hlc", W: 1, R: 1, PrimaryReads: "any"}},
		{"hlc:w1r1", Settings{Mode: "hlc", W: 1, R: 1, PrimaryReads: "any"}},
		{"primary", Settings{Mode: "primary", W: 1, R: 1, PrimaryReads: "any"}},
		{"primary:reads-primary", Settings{Mode: "primary", W: 1, R: 1, PrimaryReads: "primary"}},
		{"lww:w1r1+sessions", Settings{Mode: "lww", W: 1, R: 1, PrimaryReads: "any", Sessions: true}},
		{"mvr", Settings{Mode: "mvr", W: 1, R: 1, PrimaryReads: "any"}},
		{"mvr:w2r2", Settings{Mode: "mvr", W: 2, R: 2, PrimaryReads: "any"}},
	}
	base := DB{}.NewSettings()
	c := db.Common{Nodes: 3}
	for _, tc := range good {
		t.Run("spec/"+tc.spec+"/parsed", func(t *testing.T) {
			got, err := base.Cell(tc.spec, c)
			if err != nil {
				t.Fatal(err)
			}
			tc.want.SetImpl = "orset"
			if *got.(*Settings) != tc.want {
				t.Errorf("got %+v, want %+v", *got.(*Settings), tc.want)
			}
		})
	}
	bad := []struct{ spec, why string }{
		{"paxos", `unknown mode "paxos"`},
		{"raft:w2r2", "raft takes no parameters"},
		{"lww:w2", `quorums "w2"`},
		{"lww:w4r1", "need 1 <= W, R <= N <= 3 nodes"},
		{"lww:n2w3r1", "need 1 <= W, R <= N <= 3 nodes"},
		{"lww:w0r1", "need 1 <= W, R"},
		{"primary:reads-follower", `unknown primary parameter "reads-follower"`},
		{"mvr+sessions", "mvr runs without sessions"},
	}
	for _, tc := range bad {
		t.Run("spec/"+tc.spec+"/error", func(t *testing.T) {
			_, err := base.Cell(tc.spec, c)
			if err == nil {
				t.Fatal("no error")
			}
			for _, want := range []string{`"` + tc.spec + `"`, tc.why, "accepted forms: raft, lww, lww:w1r1"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
		})
	}
}
