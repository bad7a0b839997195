package results

import (
	"encoding/xml"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/eccheck/eccheck/checkers"
)

// JUnit XML, as Jenkins, GitLab and the GitHub test-report actions read it.
// A run is a <testsuite>; each checker is a <testcase>. An invalid checker
// has a <failure> listing its anomalies. An unknown checker has an <error>,
// not a <skipped>: every one of those CI systems counts an error as a
// failing test and shows it in red with its message, while a skipped test is
// grey, does not fail the build in their default settings and is easy to
// overlook, and "the checker could not decide" (eccheck exits 2) must not
// read as a pass.

// JUnitShownAnomalies is how many anomalies a <failure> lists; results.json
// has them all.
const JUnitShownAnomalies = 20

type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name       string          `xml:"name,attr"`
	Tests      int             `xml:"tests,attr"`
	Failures   int             `xml:"failures,attr"`
	Errors     int             `xml:"errors,attr"`
	Skipped    int             `xml:"skipped,attr"`
	Properties []junitProperty `xml:"properties>property"`
	Cases      []junitCase     `xml:"testcase"`
	SystemErr  *junitText      `xml:"system-err,omitempty"`
}

type junitProperty struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Failure   *junitProblem `xml:"failure,omitempty"`
	Error     *junitProblem `xml:"error,omitempty"`
	SystemOut *junitText    `xml:"system-out,omitempty"`
}

type junitProblem struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Text    string `xml:",cdata"`
}

// junitText is element text kept readable: CDATA keeps its line breaks.
type junitText struct {
	Text string `xml:",cdata"`
}

func junitTextOf(lines []string) *junitText {
	if len(lines) == 0 {
		return nil
	}
	return &junitText{Text: strings.Join(lines, "\n")}
}

// WriteJUnit writes reports as one JUnit XML document: a <testsuite> per
// report (per run), a <testcase> per checker.
func WriteJUnit(w io.Writer, reports ...Report) error {
	doc := junitSuites{Name: "eccheck"}
	for _, r := range reports {
		s := junitSuiteOf(r)
		doc.Tests += s.Tests
		doc.Failures += s.Failures
		doc.Errors += s.Errors
		doc.Suites = append(doc.Suites, s)
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return fmt.Errorf("junit: %w", err)
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return fmt.Errorf("junit: %w", err)
	}
	if _, err := io.WriteString(w, "\n"); err != nil {
		return fmt.Errorf("junit: %w", err)
	}
	return nil
}

func junitSuiteOf(r Report) junitSuite {
	s := junitSuite{
		Name: "eccheck " + r.Source,
		Properties: []junitProperty{
			{"source", r.Source},
			{"workload", string(r.Workload)},
			{"operations", strconv.Itoa(r.Ops)},
			{"verdict", string(r.Verdict)},
			{"schema", strconv.Itoa(r.Schema)},
		},
		SystemErr: junitTextOf(r.Warnings),
	}
	class := "eccheck." + string(r.Workload)
	for _, res := range r.Results {
		c := junitCase{Name: res.Checker, Classname: class}
		out := []string{}
		if res.Summary != "" {
			out = append(out, res.Summary)
		}
		switch res.Verdict {
		case checkers.Invalid:
			s.Failures++
			c.Failure = junitFailure(res)
		case checkers.Valid:
			if res.Reason != "" {
				out = append(out, res.Reason)
			}
		default:
			s.Errors++
			reason := res.Reason
			if reason == "" {
				reason = "the checker could not decide"
			}
			c.Error = &junitProblem{Message: reason, Type: string(res.Verdict), Text: reason}
		}
		for _, art := range res.Artifacts {
			out = append(out, "see "+art)
		}
		c.SystemOut = junitTextOf(out)
		s.Cases = append(s.Cases, c)
	}
	s.Tests = len(s.Cases)
	return s
}

// junitFailure lists the first anomalies of an invalid result, each with
// its explanation and operations.
func junitFailure(res checkers.Result) *junitProblem {
	kinds := []string{}
	seen := map[string]bool{}
	var b strings.Builder
	for i, a := range res.Anomalies {
		if !seen[a.Kind] {
			seen[a.Kind] = true
			kinds = append(kinds, a.Kind)
		}
		if i >= JUnitShownAnomalies {
			continue
		}
		fmt.Fprintf(&b, "[%s] %s\n", a.Kind, a.Explanation)
		if len(a.Ops) > 0 {
			fmt.Fprintf(&b, "    ops: %s\n", opList(a.Ops))
		}
	}
	if res.AnomalyCount > JUnitShownAnomalies {
		fmt.Fprintf(&b, "... and %d more (results.json lists them all)\n", res.AnomalyCount-JUnitShownAnomalies)
	}
	msg := fmt.Sprintf("%d anomal%s", res.AnomalyCount, plural(res.AnomalyCount, "y", "ies"))
	if len(res.Anomalies) > 0 {
		msg += "; first: " + res.Anomalies[0].Explanation
	}
	return &junitProblem{Message: msg, Type: strings.Join(kinds, ","), Text: b.String()}
}
