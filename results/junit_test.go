package results

import (
	"bytes"
	"encoding/xml"
	"strings"
	"testing"

	"github.com/eccheck/eccheck/checkers"
)

type parsedJUnit struct {
	Tests    int `xml:"tests,attr"`
	Failures int `xml:"failures,attr"`
	Errors   int `xml:"errors,attr"`
	Suites   []struct {
		Name  string `xml:"name,attr"`
		Cases []struct {
			Name    string `xml:"name,attr"`
			Failure *struct {
				Message string `xml:"message,attr"`
				Text    string `xml:",chardata"`
			} `xml:"failure"`
			Error *struct {
				Message string `xml:"message,attr"`
				Type    string `xml:"type,attr"`
			} `xml:"error"`
			Skipped *struct{} `xml:"skipped"`
		} `xml:"testcase"`
	} `xml:"testsuite"`
}

func TestJUnit(t *testing.T) {
	rep, _ := fixture(t)
	unknown := rep
	unknown.Results = append([]checkers.Result(nil), rep.Results...)
	unknown.Results[3] = checkers.Result{Checker: unknown.Results[3].Checker, Verdict: checkers.Unknown, Reason: "search timed out after 1s"}

	for _, c := range []struct {
		name     string
		reports  []Report
		failures map[string]bool // checkers with a <failure>
		errors   map[string]string
	}{
		{"junit/invalid-run/failure-per-invalid-checker", []Report{rep},
			map[string]bool{"linearizable": true, "read-your-writes": true, "monotonic-reads": true}, nil},
		{"junit/unknown-checker/error-with-reason", []Report{unknown},
			map[string]bool{"linearizable": true, "read-your-writes": true, "monotonic-reads": true},
			map[string]string{"lost-writes": "search timed out after 1s"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := WriteJUnit(&b, c.reports...); err != nil {
				t.Fatal(err)
			}
			var doc parsedJUnit
			if err := xml.Unmarshal(b.Bytes(), &doc); err != nil {
				t.Fatalf("junit does not parse: %v\n%s", err, b.String())
			}
			if len(doc.Suites) != 1 || len(doc.Suites[0].Cases) != len(rep.Results) {
				t.Fatalf("want one suite with a case per checker (%d), got %+v", len(rep.Results), doc)
			}
			if doc.Tests != len(rep.Results) || doc.Failures != len(c.failures) || doc.Errors != len(c.errors) {
				t.Errorf("totals tests=%d failures=%d errors=%d, want %d %d %d", doc.Tests, doc.Failures, doc.Errors, len(rep.Results), len(c.failures), len(c.errors))
			}
			for _, tc := range doc.Suites[0].Cases {
				if got := tc.Failure != nil; got != c.failures[tc.Name] {
					t.Errorf("%s: failure %v, want %v", tc.Name, got, c.failures[tc.Name])
				}
				if tc.Failure != nil && (!strings.Contains(tc.Failure.Text, "ops: #") || !strings.Contains(tc.Failure.Message, "anomal")) {
					t.Errorf("%s: failure lacks its anomalies and operations: %+v", tc.Name, tc.Failure)
				}
				want, isErr := c.errors[tc.Name]
				if (tc.Error != nil) != isErr || (isErr && tc.Error.Message != want) {
					t.Errorf("%s: error %+v, want one with message %q: %v", tc.Name, tc.Error, want, isErr)
				}
				if tc.Skipped != nil {
					t.Errorf("%s: skipped; unknown must be an error", tc.Name)
				}
			}
		})
	}
	t.Run("junit/two-runs/two-suites", func(t *testing.T) {
		var b bytes.Buffer
		if err := WriteJUnit(&b, rep, unknown); err != nil {
			t.Fatal(err)
		}
		var doc parsedJUnit
		if err := xml.Unmarshal(b.Bytes(), &doc); err != nil {
			t.Fatal(err)
		}
		if len(doc.Suites) != 2 || doc.Tests != 2*len(rep.Results) || doc.Failures != 6 || doc.Errors != 1 {
			t.Fatalf("two runs: %d suites, totals %d/%d/%d", len(doc.Suites), doc.Tests, doc.Failures, doc.Errors)
		}
	})
}
