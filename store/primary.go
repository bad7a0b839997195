package store

import "errors"

// newPrimary makes the primary engine. Placeholder until it lands.
func newPrimary(e env) (engine, error) { return nil, errors.New("primary mode is not built yet") }
