package store

import "errors"

// newRaft makes the raft engine. Placeholder until it lands.
func newRaft(e env) (engine, error) { return nil, errors.New("raft mode is not built yet") }
