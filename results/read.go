package results

import (
	"encoding/json"
	"fmt"
	"io"
)

// ReadJSON reads a report written by [WriteJSON] (results.json). It refuses
// a document without a schema version, which is not an eccheck report, and
// one of a newer schema than this eccheck knows. Checker details come back
// as generic JSON (maps and slices).
func ReadJSON(r io.Reader) (Report, error) {
	var rep Report
	dec := json.NewDecoder(r)
	if err := dec.Decode(&rep); err != nil {
		return Report{}, fmt.Errorf("decode report: %w", err)
	}
	switch {
	case rep.Schema == 0:
		return Report{}, fmt.Errorf("no \"schema\" field: not an eccheck report")
	case rep.Schema > SchemaVersion:
		return Report{}, fmt.Errorf("report schema %d is newer than this eccheck reads (%d): use a newer eccheck", rep.Schema, SchemaVersion)
	}
	return rep, nil
}
