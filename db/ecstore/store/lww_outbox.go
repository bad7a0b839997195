// This file holds the lww, hlc and mvr modes' outboxes: the replica operations
// bound for a peer, queued and sent in batch messages.

package store

import (
	"context"
	"errors"
	"net"
	"sync"
	"time"
)

// lwwBatch is a batch message: replica operations for one peer.
type lwwBatch struct {
	Items []lwwItem `json:"items"`
}

// lwwBatchReply answers a batch message, one reply per operation in order.
type lwwBatchReply struct {
	Items []lwwReply `json:"items"`
}

// lwwOutcome is what became of a replica operation.
type lwwOutcome uint8

const (
	lwwAcked   lwwOutcome = iota // the replica answered
	lwwMaybe                     // no answer: it may or may not have been applied
	lwwRefused                   // certainly not delivered (connection refused, dropped from the queue)
)

// lwwResult is what one replica made of a replica operation.
type lwwResult struct {
	from string
	out  lwwOutcome
	rep  lwwReply
}

// lwwPending is a replica operation waiting in a peer's outbox.
type lwwPending struct {
	it       lwwItem
	deadline time.Time
	ch       chan<- lwwResult // buffered for every replica of the fan-out; nil: nobody waits
	// urgent: a coordinator waits for this answer (a read, or a write that
	// needs this replica's ack to reach W); otherwise the operation may
	// linger in the queue to share a message with others, as replication
	// that no client waits for does in Cassandra's message coalescing.
	urgent bool
}

func (p *lwwPending) done(r lwwResult) {
	if p.ch != nil {
		p.ch <- r
	}
}

// lwwOutbox batches the replica operations bound for one peer: one
// goroutine takes whatever has queued up and sends it as one message, with
// up to lwwWorkers messages in flight, so that under load one message
// carries many operations. A full queue refuses new operations, and
// operations past their deadline are dropped unsent: anti-entropy repairs
// what they would have carried.
type lwwOutbox struct {
	l      *lww
	to     string
	mu     sync.Mutex
	queue  []*lwwPending
	urgent int           // urgent operations in the queue
	notify chan struct{} // something was queued
	hurry  chan struct{} // something urgent was queued
}

// push queues a replica operation for the peer.
func (o *lwwOutbox) push(p *lwwPending) {
	select {
	case <-o.l.stopCh:
		p.done(lwwResult{from: o.to, out: lwwRefused})
		return
	default:
	}
	o.mu.Lock()
	if len(o.queue) >= lwwMaxQueue {
		o.mu.Unlock()
		p.done(lwwResult{from: o.to, out: lwwRefused})
		return
	}
	o.queue = append(o.queue, p)
	if p.urgent {
		o.urgent++
	}
	o.mu.Unlock()
	select {
	case o.notify <- struct{}{}:
	default:
	}
	if p.urgent {
		select {
		case o.hurry <- struct{}{}:
		default:
		}
	}
}

// linger waits up to lwwLinger for more operations to join the next batch,
// unless one in the queue is urgent or the batch is full.
func (o *lwwOutbox) linger() {
	o.mu.Lock()
	wait := o.urgent == 0 && len(o.queue) < lwwMaxBatch
	o.mu.Unlock()
	if !wait {
		return
	}
	t := time.NewTimer(lwwLinger)
	defer t.Stop()
	select {
	case <-t.C:
	case <-o.hurry:
	case <-o.l.stopCh:
	}
}

// take removes up to lwwMaxBatch operations from the queue; it answers
// those whose deadline passed as refused (they were never sent).
func (o *lwwOutbox) take() (batch, expired []*lwwPending) {
	now := time.Now()
	o.mu.Lock()
	i := 0
	for ; i < len(o.queue) && len(batch) < lwwMaxBatch; i++ {
		p := o.queue[i]
		if p.urgent {
			o.urgent--
		}
		if now.After(p.deadline) {
			expired = append(expired, p)
			continue
		}
		batch = append(batch, p)
	}
	n := copy(o.queue, o.queue[i:])
	clear(o.queue[n:])
	o.queue = o.queue[:n]
	o.mu.Unlock()
	return batch, expired
}

// run sends the queue's operations in batches, with up to lwwWorkers
// messages in flight, until stop.
func (o *lwwOutbox) run() {
	slots := make(chan struct{}, lwwWorkers)
	var sending sync.WaitGroup
	defer sending.Wait()
	for {
		select {
		case <-o.l.stopCh:
			o.failAll()
			return
		case <-o.notify:
		}
		o.linger()
		for {
			select {
			case slots <- struct{}{}:
			case <-o.l.stopCh:
				o.failAll()
				return
			}
			batch, expired := o.take()
			for _, p := range expired {
				p.done(lwwResult{from: o.to, out: lwwRefused})
			}
			if len(batch) == 0 {
				<-slots
				break
			}
			sending.Go(func() {
				o.send(batch)
				<-slots
			})
		}
	}
}

// failAll answers every queued operation as never sent.
func (o *lwwOutbox) failAll() {
	o.mu.Lock()
	q := o.queue
	o.queue, o.urgent = nil, 0
	o.mu.Unlock()
	for _, p := range q {
		p.done(lwwResult{from: o.to, out: lwwRefused})
	}
}

// send delivers one batch and answers its operations.
func (o *lwwOutbox) send(batch []*lwwPending) {
	m := lwwBatch{Items: make([]lwwItem, len(batch))}
	for i, p := range batch {
		m.Items[i] = p.it
	}
	ctx, cancel := context.WithTimeout(o.l.ctx, o.l.cfg.RequestTimeout)
	var rep lwwBatchReply
	err := o.l.e.peers.Call(ctx, o.to, lwwBatchKind, m, &rep)
	cancel()
	switch {
	case err == nil && len(rep.Items) == len(batch):
		for i, p := range batch {
			p.done(lwwResult{from: o.to, out: lwwAcked, rep: rep.Items[i]})
		}
	case err != nil && lwwUndelivered(err):
		for _, p := range batch {
			p.done(lwwResult{from: o.to, out: lwwRefused})
		}
	default:
		for _, p := range batch {
			p.done(lwwResult{from: o.to, out: lwwMaybe})
		}
	}
}

// lwwUndelivered reports whether a peer call's error proves the
// message never reached the peer: the connection could not be opened. A
// missing reply (ErrNoReply) or an error answer may follow delivery.
func lwwUndelivered(err error) bool {
	var op *net.OpError
	return !errors.Is(err, ErrNoReply) && errors.As(err, &op) && op.Op == "dial"
}
