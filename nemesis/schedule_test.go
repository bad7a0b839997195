package nemesis

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseFaults(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []string
		err      string
	}{
		{"parse/empty/no faults", "", nil, ""},
		{"parse/none/no faults", "none", nil, ""},
		{"parse/two with spaces/both in order", " partition , clock ", []string{"partition", "clock"}, ""},
		{"parse/all four/order kept", "kill,pause,clock,partition", []string{"kill", "pause", "clock", "partition"}, ""},
		{"parse/repeat/once", "partition,partition", []string{"partition"}, ""},
		{"parse/trailing comma/ignored", "pause,", []string{"pause"}, ""},
		{"parse/typo/error listing the valid names", "parition", nil, `unknown fault "parition" (valid: partition, clock, kill, pause, failover, lag, crash, or none)`},
		{"parse/none with others/error", "none,kill", nil, "none cannot be combined"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseFaults(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("ParseFaults(%q) = %v, %v; want an error containing %q", tc.in, got, err, tc.err)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Fatalf("ParseFaults(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	for _, tc := range []struct {
		name  string
		nodes int
		o     Options
		err   string
	}{
		{"new/unknown fault/error", 3, Options{Faults: []string{"flood"}}, `unknown fault "flood"`},
		{"new/unknown shape/error listing shapes", 3, Options{Faults: []string{"partition"}, Partitions: []string{"star"}}, "valid: halves, isolate, ring, bridge, one-way"},
		{"new/kill on 2 nodes/error", 2, Options{Faults: []string{"kill"}}, "at least 3 nodes"},
		{"new/ring on 2 nodes/error", 2, Options{Faults: []string{"partition"}, Partitions: []string{"ring"}}, "ring needs at least 3 nodes"},
		{"new/partition on 1 node/error", 1, Options{Faults: []string{"partition"}}, "at least 2 nodes"},
		{"new/no nodes/error", 0, Options{}, "no nodes"},
		{"new/negative interval/error", 3, Options{Interval: -time.Second}, "negative"},
		{"new/clock max under 1ms/error", 3, Options{Faults: []string{"clock"}, ClockMax: time.Microsecond}, "under a millisecond"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(newFake(tc.nodes), tc.o, nil)
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("New = %v; want an error containing %q", err, tc.err)
			}
		})
	}
	t.Run("new/duplicate node/error", func(t *testing.T) {
		c := newFake(2)
		c.nodes = append(c.nodes, "n1")
		if _, err := New(c, Options{}, nil); err == nil || !strings.Contains(err.Error(), `"n1" appears twice`) {
			t.Fatalf("New = %v; want a duplicate node error", err)
		}
	})
}

// viewOf returns the nodes whose messages node a receives, itself included.
func viewOf(nodes []string, g map[string][]string, a string) []string {
	var out []string
	for _, b := range nodes {
		if !slices.Contains(g[a], b) {
			out = append(out, b)
		}
	}
	return out
}

func symmetric(t *testing.T, s Step) {
	t.Helper()
	for a, bs := range s.Grudge {
		for _, b := range bs {
			if !slices.Contains(s.Grudge[b], a) {
				t.Errorf("%s: %s drops %s but %s does not drop %s: %v", s.Desc, a, b, b, a, s.Grudge)
			}
		}
	}
}

// shapeChecks check the grudge of each partition shape.
var shapeChecks = map[string]func(t *testing.T, nodes []string, s Step){
	"halves": func(t *testing.T, nodes []string, s Step) {
		symmetric(t, s)
		if len(s.Nodes) != len(nodes)/2 {
			t.Errorf("%s: smaller half %v, want %d nodes", s.Desc, s.Nodes, len(nodes)/2)
		}
		for _, a := range nodes {
			want := slices.Contains(s.Nodes, a)
			for _, b := range viewOf(nodes, s.Grudge, a) {
				if slices.Contains(s.Nodes, b) != want {
					t.Errorf("%s: %s sees %s across the cut: %v", s.Desc, a, b, s.Grudge)
				}
			}
			if n := len(viewOf(nodes, s.Grudge, a)); want && n != len(nodes)/2 || !want && n != len(nodes)-len(nodes)/2 {
				t.Errorf("%s: %s sees %d nodes: %v", s.Desc, a, n, s.Grudge)
			}
		}
	},
	"isolate": func(t *testing.T, nodes []string, s Step) {
		symmetric(t, s)
		x := s.Nodes[0]
		if got := viewOf(nodes, s.Grudge, x); !slices.Equal(got, []string{x}) {
			t.Errorf("%s: the isolated node sees %v", s.Desc, got)
		}
		for _, a := range nodes {
			if a != x && !slices.Equal(s.Grudge[a], []string{x}) {
				t.Errorf("%s: %s drops %v, want only %s", s.Desc, a, s.Grudge[a], x)
			}
		}
	},
	"ring": func(t *testing.T, nodes []string, s Step) {
		symmetric(t, s)
		majority := len(nodes)/2 + 1
		seen := map[string]string{}
		for _, a := range nodes {
			view := viewOf(nodes, s.Grudge, a)
			if len(view) < majority {
				t.Errorf("%s: %s sees %v, not a majority", s.Desc, a, view)
			}
			if b, ok := seen[fmt.Sprint(view)]; ok {
				t.Errorf("%s: %s and %s see the same majority %v", s.Desc, a, b, view)
			}
			seen[fmt.Sprint(view)] = a
		}
		if len(s.Grudge) == 0 {
			t.Errorf("%s: no grudge at all", s.Desc)
		}
		if len(nodes) == 3 && (len(s.Grudge) != 2 || len(slices.Concat(slices.Collect(maps.Values(s.Grudge))...)) != 2) {
			t.Errorf("%s: for 3 nodes want a chain (two ends that drop each other), got %v", s.Desc, s.Grudge)
		}
	},
	"bridge": func(t *testing.T, nodes []string, s Step) {
		symmetric(t, s)
		b := s.Nodes[0]
		if _, ok := s.Grudge[b]; ok {
			t.Errorf("%s: the bridge drops %v", s.Desc, s.Grudge[b])
		}
		for _, a := range nodes {
			if slices.Contains(s.Grudge[a], b) {
				t.Errorf("%s: %s drops the bridge", s.Desc, a)
			}
			if a != b && len(s.Grudge[a]) == 0 {
				t.Errorf("%s: %s drops nothing; only the bridge should see everyone", s.Desc, a)
			}
		}
		// The others are two sides: every node on one side drops every
		// node on the other.
		for _, a := range nodes {
			if a == b {
				continue
			}
			for _, c := range s.Grudge[a] {
				if !slices.Equal(s.Grudge[c], slices.DeleteFunc(viewOf(nodes, s.Grudge, a), func(x string) bool { return x == b })) {
					t.Errorf("%s: %s and %s are not on opposite sides: %v", s.Desc, a, c, s.Grudge)
				}
			}
		}
	},
	"one-way": func(t *testing.T, nodes []string, s Step) {
		x := s.Nodes[0]
		if len(s.Grudge) != 1 {
			t.Errorf("%s: %d nodes have a grudge, want only %s: %v", s.Desc, len(s.Grudge), x, s.Grudge)
		}
		if got := viewOf(nodes, s.Grudge, x); !slices.Equal(got, []string{x}) {
			t.Errorf("%s: the deaf node still hears %v", s.Desc, got)
		}
	},
}

func TestPartitionShapes(t *testing.T) {
	for _, n := range []int{3, 4, 5, 7} {
		for _, shape := range []string{"halves", "isolate", "ring", "bridge", "one-way"} {
			t.Run(fmt.Sprintf("partition/%s on %d nodes/right grudge", shape, n), func(t *testing.T) {
				c := newFake(n)
				nem, err := New(c, Options{Faults: []string{"partition"}, Partitions: []string{shape}, Seed: uint64(n)}, nil)
				if err != nil {
					t.Fatal(err)
				}
				picked := map[string]bool{}
				for _, s := range nem.Schedule(30) {
					if s.Kind != "partition" || s.Shape != shape || !strings.HasPrefix(s.Desc, "partition "+shape+" ") {
						t.Fatalf("step %+v: want a %s partition", s, shape)
					}
					for a, bs := range s.Grudge {
						if !slices.Contains(c.nodes, a) || len(bs) == 0 || !slices.IsSorted(bs) || slices.Contains(bs, a) || len(slices.Compact(slices.Clone(bs))) != len(bs) {
							t.Errorf("%s: bad grudge entry %s: %v", s.Desc, a, bs)
						}
					}
					shapeChecks[shape](t, c.nodes, s)
					picked[s.Desc] = true
				}
				if len(picked) < 2 {
					t.Errorf("30 draws gave only %v", picked)
				}
			})
		}
	}
}

func TestRingByHand(t *testing.T) {
	nodes := []string{"n1", "n2", "n3", "n4", "n5", "n6"}
	for _, tc := range []struct {
		name string
		n    int
		want map[string][]string
	}{
		{"ring/3 nodes/chain n1-n2-n3", 3, map[string][]string{"n1": {"n3"}, "n3": {"n1"}}},
		{"ring/4 nodes/each drops its opposite", 4, map[string][]string{"n1": {"n3"}, "n2": {"n4"}, "n3": {"n1"}, "n4": {"n2"}}},
		{"ring/5 nodes/each sees its two neighbours", 5, map[string][]string{
			"n1": {"n3", "n4"}, "n2": {"n4", "n5"}, "n3": {"n1", "n5"}, "n4": {"n1", "n2"}, "n5": {"n2", "n3"}}},
		{"ring/6 nodes/each drops its opposite", 6, map[string][]string{
			"n1": {"n4"}, "n2": {"n5"}, "n3": {"n6"}, "n4": {"n1"}, "n5": {"n2"}, "n6": {"n3"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ring(nodes[:tc.n]); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("ring = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestDefaultShapesFitTheNodeCount(t *testing.T) {
	nem, err := New(newFake(2), Options{Faults: []string{"partition"}, Seed: 3}, nil)
	if err != nil {
		t.Fatal(err)
	}
	shapes := map[string]bool{}
	for _, s := range nem.Schedule(60) {
		shapes[s.Shape] = true
	}
	if want := map[string]bool{"halves": true, "isolate": true, "one-way": true}; !reflect.DeepEqual(shapes, want) {
		t.Fatalf("2 nodes drew shapes %v, want %v (ring and bridge need 3)", shapes, want)
	}
	nem, err = New(newFake(5), Options{Faults: []string{"partition"}, Seed: 3}, nil)
	if err != nil {
		t.Fatal(err)
	}
	shapes = map[string]bool{}
	for _, s := range nem.Schedule(100) {
		shapes[s.Shape] = true
	}
	if len(shapes) != 5 {
		t.Fatalf("5 nodes drew shapes %v, want all five", shapes)
	}
}

func TestScheduleDeterminism(t *testing.T) {
	all := []string{"partition", "clock", "kill", "pause"}
	schedule := func(t *testing.T, c *fakeCluster, seed uint64) []Step {
		t.Helper()
		nem, err := New(c, Options{Faults: all, Seed: seed, Interval: time.Second}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return nem.Schedule(40)
	}
	t.Run("schedule/same seed/same steps", func(t *testing.T) {
		a, b := schedule(t, newFake(5), 42), schedule(t, newFake(5), 42)
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("seed 42 gave two schedules:\n%v\n%v", a, b)
		}
	})
	t.Run("schedule/node list in another order/same steps", func(t *testing.T) {
		c := newFake(5)
		slices.Reverse(c.nodes)
		if a, b := schedule(t, newFake(5), 42), schedule(t, c, 42); !reflect.DeepEqual(a, b) {
			t.Fatalf("the order of the node list changed the schedule:\n%v\n%v", a, b)
		}
	})
	t.Run("schedule/different seeds/different steps", func(t *testing.T) {
		seen := map[string]uint64{}
		for seed := range uint64(10) {
			key := fmt.Sprint(schedule(t, newFake(5), seed))
			if other, ok := seen[key]; ok {
				t.Fatalf("seeds %d and %d gave the same schedule", other, seed)
			}
			seen[key] = seed
		}
	})
	t.Run("schedule/kinds/take turns in the order given", func(t *testing.T) {
		for i, s := range schedule(t, newFake(5), 1) {
			if s.Kind != all[i%4] {
				t.Fatalf("step %d is %s, want %s", i, s.Kind, all[i%4])
			}
			if want := time.Duration(2*i+1) * time.Second; s.At != want {
				t.Fatalf("step %d at %s, want %s", i, s.At, want)
			}
		}
	})
	t.Run("schedule/no faults/empty", func(t *testing.T) {
		nem, err := New(newFake(3), Options{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := nem.Schedule(5); got != nil {
			t.Fatalf("no faults gave a schedule %v", got)
		}
	})
}

func TestClockSteps(t *testing.T) {
	nem, err := New(newFake(3), Options{Faults: []string{"clock"}, ClockMax: 50 * time.Millisecond, Seed: 9}, nil)
	if err != nil {
		t.Fatal(err)
	}
	shapes := map[string]int{}
	for _, s := range nem.Schedule(200) {
		shapes[s.Shape]++
		if s.Offset == 0 || s.Offset < -50*time.Millisecond || s.Offset > 50*time.Millisecond || s.Offset%time.Millisecond != 0 {
			t.Errorf("%s: offset %s, want whole nonzero ms within 50ms either way", s.Desc, s.Offset)
		}
		if len(s.Nodes) != 1 {
			t.Errorf("%s: nodes %v, want one", s.Desc, s.Nodes)
		}
		switch s.Shape {
		case "bump":
			if want := fmt.Sprintf("clock %s %s", s.Nodes[0], signed(s.Offset)); s.Desc != want || s.Period != 0 {
				t.Errorf("bump %+v, want desc %q and no period", s, want)
			}
		case "strobe":
			if s.Period < 5*time.Millisecond || s.Period > 20*time.Millisecond || !strings.HasPrefix(s.Desc, "clock strobe ") {
				t.Errorf("strobe %+v: want a period of 5 to 20ms", s)
			}
		default:
			t.Errorf("clock shape %q", s.Shape)
		}
	}
	if shapes["bump"] == 0 || shapes["strobe"] == 0 {
		t.Fatalf("200 clock steps gave %v, want bumps and strobes", shapes)
	}
	if got := signed(-3200 * time.Millisecond); got != "-3.2s" {
		t.Fatalf("signed(-3.2s) = %q", got)
	}
}

func TestKillAMinority(t *testing.T) {
	for _, tc := range []struct {
		nodes int
		sizes []int
	}{{3, []int{1}}, {4, []int{1}}, {5, []int{1, 2}}, {7, []int{1, 2, 3}}} {
		t.Run(fmt.Sprintf("kill/%d nodes/sizes %v", tc.nodes, tc.sizes), func(t *testing.T) {
			nem, err := New(newFake(tc.nodes), Options{Faults: []string{"kill"}, Seed: 5}, nil)
			if err != nil {
				t.Fatal(err)
			}
			sizes := map[int]bool{}
			for _, s := range nem.Schedule(100) {
				sizes[len(s.Nodes)] = true
				if !slices.IsSorted(s.Nodes) || s.Desc != "kill "+strings.Join(s.Nodes, ",") {
					t.Errorf("step %+v", s)
				}
			}
			var got []int
			for k := range sizes {
				got = append(got, k)
			}
			slices.Sort(got)
			if !slices.Equal(got, tc.sizes) {
				t.Fatalf("killed sets of sizes %v, want %v", got, tc.sizes)
			}
		})
	}
}
