package run

import "testing"

func TestShapeGrudge(t *testing.T) {
	nodes := []string{"n1", "n2", "n3"}
	for _, tc := range []struct {
		name, shape, node, want string
	}{
		{"shape/isolate n2/both ways", "isolate", "n2", "n1=n2;n2=n1,n3;n3=n2"},
		{"shape/one-way n1/only n1 drops", "one-way", "n1", "n1=n2,n3"},
		{"shape/halves of three/n1 against n2,n3", "halves", "", "n1=n2,n3;n2=n1;n3=n1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, _, err := ShapeGrudge(tc.shape, tc.node, nodes)
			if err != nil {
				t.Fatal(err)
			}
			if got := FormatGrudge(g); got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
	if _, _, err := ShapeGrudge("star", "n1", nodes); err == nil {
		t.Error("shape/unknown/error: got none")
	}
}
