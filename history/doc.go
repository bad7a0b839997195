// Package history defines how eccheck records a run and reads it back: the
// [Op] (one line of a history), the JSONL file format that is eccheck's public
// contract, a [Recorder] that many client workers write to at once, a reader
// that rejects histories that cannot be real, the pairing of invocations with
// completions into [Operation] values, and import of Jepsen EDN histories.
//
// history is the leaf package: every other eccheck package imports it and it
// imports none of them.
package history
