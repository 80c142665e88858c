package eventbus

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/nats-io/nats.go"

	"github.com/idlog/idlog/eventstore"
)

// encodeChunk is how many messages an encoding worker takes at once: enough to make the hand-over
// and the batch signature cheap, few enough that the first publishes of a batch need not wait long.
const encodeChunk = 32

// encodeAhead is how many chunks the workers encode ahead of the publishes. Enough to keep the
// window full; not more, since workers running far ahead hold every core, and the goroutines
// that publish, take acknowledgements (and, embedded, store the messages) then wait for one.
const encodeAhead = 4

// encoder turns the relay's batches into signed messages on every core. Encoding and hashing a
// message, and a share of its tree's signature, cost about as much CPU as publishing it, so one
// goroutine encoding and publishing in turn leaves the other cores, and JetStream, waiting.
type encoder struct {
	signer *EventSigner
	source string
}

// encoding is one batch being encoded: workers take chunks in order, and the publisher takes the
// messages in order as their chunks are ready.
type encoding struct {
	en      *encoder
	batch   []eventstore.Event
	msgs    []*nats.Msg
	ready   []chan struct{} // one per chunk, closed when its messages are ready
	next    atomic.Int64    // the next chunk to take
	credits chan struct{}   // one per chunk the workers may take ahead of the publishes
	quit    chan struct{}   // closed by stop
	wg      sync.WaitGroup
}

// start encodes batch in the background; wait hands out its messages, stop ends the work.
func (en *encoder) start(batch []eventstore.Event) *encoding {
	chunks := (len(batch) + encodeChunk - 1) / encodeChunk
	w := &encoding{en: en, batch: batch, msgs: make([]*nats.Msg, len(batch)), ready: make([]chan struct{}, chunks),
		credits: make(chan struct{}, chunks+encodeAhead), quit: make(chan struct{})}
	for i := range w.ready {
		w.ready[i] = make(chan struct{})
	}
	for range encodeAhead {
		w.credits <- struct{}{}
	}
	workers := min(runtime.GOMAXPROCS(0), chunks)
	w.wg.Add(workers)
	for range workers {
		go func() {
			defer w.wg.Done()
			for {
				select {
				case <-w.credits:
				case <-w.quit:
					return
				}
				c := int(w.next.Add(1) - 1)
				if c >= chunks {
					return
				}
				en.encodeChunk(w, c)
				close(w.ready[c])
			}
		}()
	}
	return w
}

// encodeChunk encodes and signs the messages of chunk c on the calling worker
// (appendBatchSignatures: a signature for each tree of batchTree messages). The signed parts and
// their signatures are written in a scratch buffer the workers share through a pool, and the
// bodies share one buffer of their exact size: the relay allocates little more than the messages
// it publishes. On a small machine the garbage collector's work on what it allocated otherwise
// cost about as much as the encoding.
func (en *encoder) encodeChunk(w *encoding, c int) {
	lo, hi := c*encodeChunk, min(len(w.batch), (c+1)*encodeChunk)
	scratch := scratchBufs.Get().(*encodeScratch)
	defer scratchBufs.Put(scratch)
	// The parts the signatures cover, then the messages with their signatures.
	unsigned := scratch.unsigned[:0]
	var ends [encodeChunk]int
	for i := lo; i < hi; i++ {
		unsigned = en.signer.appendKeyID(appendUnsignedCloudEvent(unsigned, en.source, w.batch[i]))
		ends[i-lo] = len(unsigned)
	}
	var signed, sigs [encodeChunk][]byte
	for i, start := 0, 0; i < hi-lo; i++ {
		signed[i], start = unsigned[start:ends[i]:ends[i]], ends[i]
	}
	scratch.unsigned = unsigned
	scratch.sigs = en.signer.appendBatchSignatures(scratch.sigs[:0], sigs[:hi-lo], signed[:hi-lo])
	size := 0
	for i := range hi - lo {
		size += signedLen(signed[i], sigs[i])
	}
	buf := make([]byte, 0, size)
	// The header values of the chunk's messages, in one array: three per message.
	values := make([]string, 3*(hi-lo))
	var prevID string // the id of message i-1, each id formatted once
	if lo > 0 {
		prevID = w.batch[lo-1].ID.String()
	}
	for i := lo; i < hi; i++ {
		e := w.batch[i]
		start := len(buf)
		buf = appendSigned(buf, signed[i-lo], sigs[i-lo])
		id := e.ID.String()
		v := values[3*(i-lo) : 3*(i-lo)+3 : 3*(i-lo)+3]
		v[0], v[1], v[2] = id, EventsStream, prevID
		h := nats.Header{headerMsgID: v[0:1:1], headerExpectedStream: v[1:2:2]}
		if i > 0 {
			// The batch is published in order: each message follows the one before it.
			h[headerExpectedLastID] = v[2:3:3]
		}
		prevID = id
		w.msgs[i] = &nats.Msg{Subject: Subject(e), Data: buf[start:len(buf):len(buf)], Header: h}
	}
}

// encodeScratch is an encoding worker's scratch: the signed parts of a chunk's messages and their
// signatures, dead once the messages are written.
type encodeScratch struct{ unsigned, sigs []byte }

// scratchBufs are the encoding workers' scratch buffers (*encodeScratch).
var scratchBufs = sync.Pool{New: func() any { return new(encodeScratch) }}

// wait returns message i once it is encoded, or ctx's error. When no worker has taken its chunk
// yet (on a loaded machine a worker may wait long for a core), the caller encodes it itself.
func (w *encoding) wait(ctx context.Context, i int) (*nats.Msg, error) {
	c := i / encodeChunk
	if i%encodeChunk == 0 && w.next.CompareAndSwap(int64(c), int64(c)+1) {
		w.en.encodeChunk(w, c)
		close(w.ready[c])
	}
	select {
	case <-w.ready[i/encodeChunk]:
		if i%encodeChunk == 0 {
			w.credits <- struct{}{} // a chunk is being published: the workers may start another
		}
		return w.msgs[i], nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// stop makes the workers give up the chunks they have not started, and waits for them.
func (w *encoding) stop() {
	close(w.quit)
	w.wg.Wait()
}
