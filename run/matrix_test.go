package run

import (
	"fmt"
	"strings"
	"testing"
)

func TestParseFaultSets(t *testing.T) {
	labels, faults, err := parseFaultSets("none, partition,partition+clock")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(labels, " ") != "none partition partition+clock" || fmt.Sprint(faults) != "[[] [partition] [partition clock]]" {
		t.Errorf("labels %q faults %q", labels, faults)
	}
	for _, s := range []string{"flood", "partition,partition", "none+clock", ""} {
		if _, _, err := parseFaultSets(s); err == nil {
			t.Errorf("nemesis/%q/error: parsed", s)
		}
	}
	if got := cellDir("lww:w1r1", "partition+clock"); got != "lww-w1r1-x-partition+clock" {
		t.Errorf("cell dir %q", got)
	}
}
