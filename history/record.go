package history

import (
	"fmt"
	"os"
	"sync"
	"time"
)

// SyncInterval is how often a [Recorder] writes buffered lines to its file.
// Each write is followed by a sync to disk, done in the background so that a
// slow disk never delays the next write. A harness killed with SIGKILL loses
// at most the lines of the last interval.
const SyncInterval = 100 * time.Millisecond

// Recorder appends operations to a JSONL history file. Many client workers
// may call [Recorder.Record] at once. The recorder owns the run's clock: it
// stamps each op with the time and index at which it was appended, under one
// lock, so the file is always in time order.
type Recorder struct {
	mu     sync.Mutex
	f      *os.File
	buf    []byte
	start  time.Time
	next   int64
	keep   bool
	ops    []History // with KeepInMemory: chunks of at most opsChunk ops
	err    error     // first write or sync error; reported by Close
	closed bool

	stop   chan struct{}
	done   chan struct{}
	syncCh chan struct{} // asks the sync goroutine for an fsync
	synced chan struct{} // closed when the sync goroutine has ended
}

// opsChunk is the size of the chunks a KeepInMemory recorder keeps ops in:
// appending to fixed chunks never copies the ops recorded before.
const opsChunk = 4096

// RecorderOption configures a Recorder.
type RecorderOption func(*Recorder)

// KeepInMemory makes the recorder also keep every op it records, returned by
// [Recorder.History], so a harness can check a run without reading the file
// back.
func KeepInMemory() RecorderOption { return func(r *Recorder) { r.keep = true } }

// Create creates (or truncates) the history file at path and starts the
// recorder's clock.
func Create(path string, opts ...RecorderOption) (*Recorder, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("create history: %w", err)
	}
	r := &Recorder{
		f:      f,
		buf:    make([]byte, 0, 64<<10),
		start:  time.Now(),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
		syncCh: make(chan struct{}, 1),
		synced: make(chan struct{}),
	}
	for _, o := range opts {
		o(r)
	}
	go r.flushLoop()
	go r.syncLoop()
	return r, nil
}

// Now returns nanoseconds since the recorder was created, on the monotonic
// clock.
func (r *Recorder) Now() int64 { return int64(time.Since(r.start)) }

// Record appends op, setting its Index and Time, and returns it as written.
// Record after Close panics: it is a harness bug.
func (r *Recorder) Record(op Op) Op {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		panic("history: Record after Close")
	}
	op.Index = r.next
	op.Time = int64(time.Since(r.start))
	r.next++
	r.buf = op.AppendJSON(r.buf)
	r.buf = append(r.buf, '\n')
	if r.keep {
		if n := len(r.ops); n == 0 || len(r.ops[n-1]) == opsChunk {
			r.ops = append(r.ops, make(History, 0, opsChunk))
		}
		last := &r.ops[len(r.ops)-1]
		*last = append(*last, op)
	}
	if len(r.buf) >= 1<<20 {
		r.flushLocked()
	}
	r.mu.Unlock()
	return op
}

// flushLocked writes the buffer to the file. The caller holds r.mu.
func (r *Recorder) flushLocked() {
	if len(r.buf) == 0 {
		return
	}
	if _, err := r.f.Write(r.buf); err != nil && r.err == nil {
		r.err = fmt.Errorf("write history: %w", err)
	}
	r.buf = r.buf[:0]
}

// flushLoop writes the buffer to the file every SyncInterval, and asks
// syncLoop for an fsync. Writing is what protects lines from a killed
// process, so it never waits for a slow fsync.
func (r *Recorder) flushLoop() {
	defer close(r.done)
	t := time.NewTicker(SyncInterval)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
			r.mu.Lock()
			r.flushLocked()
			r.mu.Unlock()
			select {
			case r.syncCh <- struct{}{}:
			default: // an fsync is already pending
			}
		}
	}
}

// syncLoop syncs the file to disk when flushLoop asks, outside the lock:
// workers keep appending meanwhile.
func (r *Recorder) syncLoop() {
	defer close(r.synced)
	for {
		select {
		case <-r.stop:
			return
		case <-r.syncCh:
			if err := r.f.Sync(); err != nil {
				r.mu.Lock()
				if r.err == nil {
					r.err = fmt.Errorf("sync history: %w", err)
				}
				r.mu.Unlock()
			}
		}
	}
}

// Len returns the number of ops recorded so far.
func (r *Recorder) Len() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.next
}

// History returns a copy of the ops recorded so far; it is empty unless the
// recorder was created with [KeepInMemory].
func (r *Recorder) History() History {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, c := range r.ops {
		n += len(c)
	}
	h := make(History, 0, n)
	for _, c := range r.ops {
		h = append(h, c...)
	}
	return h
}

// Close flushes and syncs the file, and closes it. It returns the first
// write or sync error the recorder met. Calling Close twice is harmless.
func (r *Recorder) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return r.err
	}
	r.closed = true
	r.mu.Unlock()
	close(r.stop)
	<-r.done
	<-r.synced
	r.mu.Lock()
	defer r.mu.Unlock()
	r.flushLocked()
	if err := r.f.Sync(); err != nil && r.err == nil {
		r.err = fmt.Errorf("sync history: %w", err)
	}
	if err := r.f.Close(); err != nil && r.err == nil {
		r.err = fmt.Errorf("close history: %w", err)
	}
	return r.err
}
