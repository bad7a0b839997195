package store

import "errors"

// newLWW makes the lww engine, or the hlc engine when hlc is set.
// Placeholder until the lww/hlc engine lands.
func newLWW(e env, hlc bool) (engine, error) { return nil, errors.New("lww mode is not built yet") }
