package postgres

import (
	"strings"
	"testing"
	"time"
)

func TestApplyDelayFlag(t *testing.T) {
	for _, tc := range []struct {
		in, want, wantErr string
		zero              bool
	}{
		{"50ms", "50ms", "", false},
		{"0s", "0s", "", true},
		{"n3=200ms,n2=0s", "n2=0s,n3=200ms", "", false},
		{"n2=0s", "n2=0s", "", true},
		{"-5ms", "", "want a delay", false},
		{"fast", "", "want a delay", false},
		{"n2=soon", "", "want NODE=DELAY", false},
		{"=5ms", "", "want NODE=DELAY", false},
		{"n2=1s,n2=2s", "", "named twice", false},
	} {
		var d applyDelay
		err := d.Set(tc.in)
		if (err == nil) != (tc.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("apply delay/%s/error containing %q: %v", tc.in, tc.wantErr, err)
			continue
		}
		if err == nil && (d.String() != tc.want || d.zero() != tc.zero) {
			t.Errorf("apply delay/%s/reads back as %s (zero %v): got %s (zero %v)", tc.in, tc.want, tc.zero, d.String(), d.zero())
		}
	}
	var d applyDelay
	d.Set("n2=10ms,n4=1s")
	if err := d.check(3); err == nil || !strings.Contains(err.Error(), "n4: want replicas, n2 to n3") {
		t.Errorf("apply delay/n4 in a 3-node cluster/usage error: %v", err)
	}
	if d.Set("n2=10ms") != nil || d.check(3) != nil || d.per["n2"] != 10*time.Millisecond {
		t.Errorf("apply delay/n2=10ms/accepted: %+v", d)
	}
}
