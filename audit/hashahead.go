package audit

import (
	"crypto/sha256"
	"iter"
	"runtime"
	"sync"

	"github.com/idlog/idlog/eventstore"
)

// hashed is an event of the log with its chain value computed ahead, on the assumption that the
// chain before it is prev: the ledger's value for the ordinal before. Chain.addHashed takes h only
// where the recomputed chain did reach prev, so a wrong guess (a tampered ledger) costs the
// sequential hash, never a wrong answer.
type hashed struct {
	e        eventstore.Event
	ord      uint64 // the event's ordinal, if the log holds what was sealed
	prev, h  Hash
	computed bool
}

// hashAhead yields the events of the log in order, each with its chain value computed ahead in
// parallel: the chain is a sequence of hashes, each over the one before, but the ledger holds
// every value it should have, so each link can be checked from the ledger's previous value at
// once. seals is a read of the ledger from ordinal 1 (its own, so the caller's comparison stays
// independent of it).
func hashAhead(events iter.Seq2[eventstore.Event, error], seals iter.Seq2[Seal, error]) iter.Seq2[hashed, error] {
	return func(yield func(hashed, error) bool) {
		nextSeal, stop := iter.Pull2(seals)
		defer stop()
		var (
			cur     Seal // the last seal pulled
			sealsOK = true
			ord     uint64
		)
		// prevChain is the ledger's chain value at ordinal o, if the ledger has it.
		prevChain := func(o uint64) (Hash, bool) {
			if o == 0 {
				return Hash{}, true
			}
			for sealsOK && cur.Ordinal < o {
				s, err, ok := nextSeal()
				if err != nil || !ok {
					sealsOK = false // the caller's own read of the ledger reports it
					break
				}
				cur = s
			}
			return cur.Chain, cur.Ordinal == o
		}
		batch := make([]hashed, 0, verifyPrefetch)
		flush := func() bool {
			hashBatch(batch, ord-uint64(len(batch))+1)
			for _, it := range batch {
				if !yield(it, nil) {
					return false
				}
			}
			clear(batch)
			batch = batch[:0]
			return true
		}
		for e, err := range events {
			if err != nil {
				if flush() {
					yield(hashed{}, err)
				}
				return
			}
			ord++
			it := hashed{e: e, ord: ord}
			it.prev, it.computed = prevChain(ord - 1)
			batch = append(batch, it)
			if len(batch) == cap(batch) && !flush() {
				return
			}
		}
		flush()
	}
}

// hashBatch computes the chain value of every event of batch whose previous value is known; the
// first is at ordinal first. The work is shared among the cores.
func hashBatch(batch []hashed, first uint64) {
	workers := min(runtime.GOMAXPROCS(0), (len(batch)+255)/256)
	if workers == 0 {
		return
	}
	per := (len(batch) + workers - 1) / workers
	var wg sync.WaitGroup
	for w := range workers {
		lo, hi := w*per, min(len(batch), (w+1)*per)
		wg.Go(func() {
			h := sha256.New()
			var buf []byte
			for i := lo; i < hi; i++ {
				it := &batch[i]
				if !it.computed {
					continue
				}
				buf = AppendCanonical(buf[:0], first+uint64(i), it.e)
				h.Reset()
				h.Write(it.prev[:])
				h.Write(buf)
				h.Sum(it.h[:0])
			}
		})
	}
	wg.Wait()
}
