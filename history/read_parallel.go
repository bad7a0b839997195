package history

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
)

// A large JSONL history is decoded on every core: one goroutine cuts the
// file into chunks of whole lines, workers decode chunks (each with its
// own interner), and the chunks are put back in order. Decoding is most of
// the time of checking a large history; on two cores this reads a
// million-transaction history in about half the time.

// parallelMin is the file size from which ReadFile decodes in parallel.
const parallelMin = 8 << 20

// chunkBytes is about how much of the file one chunk holds.
const chunkBytes = 1 << 20

type lineChunk struct {
	seq   int
	data  []byte
	ends  []int // line i is data[ends[i-1]:ends[i]] (ends[-1] = 0)
	first int   // the line number of its first line
	// final is set on the chunk holding the file's last line.
	final bool
}

// The buffers of chunks are reused: the file's bytes once decoded, and
// the decoded operations once copied into the history.
var (
	chunkData = sync.Pool{New: func() any { return make([]byte, 0, chunkBytes+chunkBytes/4) }}
	chunkOps  = sync.Pool{New: func() any { return make([]Op, 0, chunkBytes/64) }}
)

type decodedChunk struct {
	seq     int
	ops     []Op
	lines   []int
	noIndex []int // positions in ops whose index comes from line order
	err     error
	warning string // the truncated last line, dropped
}

// readJSONLParallel is readJSONL on several workers.
func readJSONLParallel(r io.Reader, name string, hint, workers int) (History, []string, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	chunks := make(chan lineChunk, workers)
	results := make(chan decodedChunk, workers)
	stop := make(chan struct{})
	var readErr error

	go func() {
		defer close(chunks)
		lineNo, seq := 0, 0
		cur := lineChunk{first: 1}
		send := func(final bool) bool {
			cur.seq, cur.final = seq, final
			seq++
			select {
			case chunks <- cur:
			case <-stop:
				return false
			}
			cur = lineChunk{first: lineNo + 1, data: chunkData.Get().([]byte)[:0]}
			return true
		}
		cur.data = chunkData.Get().([]byte)[:0]
		for {
			line, err := readLine(br)
			if err != nil && !errors.Is(err, io.EOF) {
				readErr = fmt.Errorf("read %s: %w", name, err)
				return
			}
			if len(line) > 0 {
				lineNo++
				cur.data = append(cur.data, line...)
				cur.ends = append(cur.ends, len(cur.data))
			}
			if err != nil { // EOF
				send(true)
				return
			}
			if len(cur.data) >= chunkBytes && !send(false) {
				return
			}
		}
	}()

	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Go(func() {
			names := newInterner()
			for c := range chunks {
				d := decodeChunk(c, name, names)
				select {
				case results <- d:
				case <-stop:
					return
				}
			}
		})
	}
	go func() {
		wg.Wait()
		close(results)
	}()

	var (
		h        = make(History, 0, hint)
		lines    = make([]int, 0, hint)
		warnings []string
		pending  = map[int]decodedChunk{}
		next     = 0
		failed   error
		done     bool // a truncated last line ended the history
	)
	for d := range results {
		pending[d.seq] = d
		for {
			d, ok := pending[next]
			if !ok {
				break
			}
			delete(pending, next)
			next++
			if failed != nil || done {
				continue
			}
			for _, i := range d.noIndex {
				d.ops[i].Index = int64(len(h) + i)
			}
			h = append(h, d.ops...)
			lines = append(lines, d.lines...)
			clear(d.ops)
			chunkOps.Put(d.ops[:0]) //nolint:staticcheck // a slice header: the backing array is what is reused
			switch {
			case d.err != nil:
				failed = d.err
				close(stop)
			case d.warning != "":
				warnings = append(warnings, d.warning)
				done = true
			}
		}
	}
	if failed != nil {
		return nil, warnings, failed
	}
	if readErr != nil {
		return nil, warnings, readErr
	}
	return finish(h, lines, name, warnings)
}

// decodeChunk decodes the lines of one chunk, as readJSONL does.
func decodeChunk(c lineChunk, name string, names *interner) decodedChunk {
	d := decodedChunk{seq: c.seq, ops: chunkOps.Get().([]Op)[:0], lines: make([]int, 0, len(c.ends))}
	defer chunkData.Put(c.data[:0]) //nolint:staticcheck // a slice header: the backing array is what is reused
	start := 0
	for i, end := range c.ends {
		line := c.data[start:end]
		start = end
		lineNo := c.first + i
		complete := line[len(line)-1] == '\n'
		trimmed := bytes.TrimSpace(line)
		if len(trimmed) == 0 {
			continue
		}
		op, derr := decodeOp(trimmed, names)
		switch {
		case errors.Is(derr, errNoIndex):
			d.noIndex = append(d.noIndex, len(d.ops))
		case derr != nil && c.final && i == len(c.ends)-1 && !complete && !json.Valid(trimmed):
			d.warning = fmt.Sprintf("%s:%d: dropped a truncated last line (%v); the run was probably cut short while writing it", name, lineNo, derr)
			return d
		case derr != nil:
			d.err = &LineError{File: name, Line: lineNo, Err: derr}
			return d
		}
		d.ops = append(d.ops, op)
		d.lines = append(d.lines, lineNo)
	}
	return d
}

// decodeWorkers is how many goroutines decode a large history.
func decodeWorkers() int { return min(runtime.GOMAXPROCS(0), 4) }
