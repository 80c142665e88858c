// Package faults holds idlog's fault tests: they build the idlog binary, run it as a child
// process and break what it stands on (kill -9, NATS stopped, database connections cut) in the
// middle of a load, then check that every acknowledged change is in the event log once, the read
// models agree with a rebuild and the NATS stream with the log. They are slow, so they sit behind
// the `faults` build tag: go test -tags faults -count=1 ./faults/
package faults
