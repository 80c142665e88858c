package esdb

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"

	esdbclient "github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/google/uuid"

	"github.com/idlog/idlog/eventstore"
)

// Streams of the adapter's own, inside the namespace. Callers' stream ids may not start with
// these, nor with "$", which EventStoreDB keeps for its system streams.
const (
	reservationPrefix = "idlog-unique-"
	checkpointPrefix  = "idlog-checkpoint-"
)

// ReservationStream is the EventStoreDB stream that records who holds unique key key in
// namespace: the namespace, "idlog-unique-", then the hex SHA-256 of the key (so the key, often an
// email address, appears nowhere in clear).
func ReservationStream(namespace, key string) string {
	sum := sha256.Sum256([]byte(key))
	return namespace + reservationPrefix + hex.EncodeToString(sum[:])
}

func checkpointStream(namespace, name string) string {
	return namespace + checkpointPrefix + name
}

var namespacePattern = regexp.MustCompile(`^[A-Za-z0-9._:-]*$`)

func validNamespace(ns string) error {
	if !namespacePattern.MatchString(ns) {
		return fmt.Errorf("%w: Namespace (%q) may hold only letters, digits, '.', '_', ':' and '-'", ErrInvalidOptions, ns)
	}
	return nil
}

// checkStreamID refuses stream ids that would land on EventStoreDB's system streams or on the
// adapter's own.
func checkStreamID(stream string) error {
	switch {
	case stream == "":
		return fmt.Errorf("%w: empty stream id", eventstore.ErrInvalidAppend)
	case strings.HasPrefix(stream, "$"):
		return fmt.Errorf("%w: stream id %q starts with '$', which EventStoreDB keeps for system streams", eventstore.ErrInvalidAppend, stream)
	case strings.HasPrefix(stream, reservationPrefix), strings.HasPrefix(stream, checkpointPrefix):
		return fmt.Errorf("%w: stream id %q starts with a prefix the EventStoreDB adapter keeps for itself", eventstore.ErrInvalidAppend, stream)
	}
	return nil
}

// expectedRevision maps our expected version (1-based, 0 = no stream) to EventStoreDB's 0-based
// expected revision.
func expectedRevision(e eventstore.ExpectedVersion) (esdbclient.ExpectedRevision, error) {
	switch {
	case e == eventstore.Any:
		return esdbclient.Any{}, nil
	case e == eventstore.NoStream:
		return esdbclient.NoStream{}, nil
	case e > 0:
		return esdbclient.Revision(uint64(e) - 1), nil
	default:
		return nil, fmt.Errorf("%w: %s", eventstore.ErrInvalidAppend, e)
	}
}

// serverFilter is the server-side filter of the global log: streams starting with the namespace
// and the caller's prefix, or, with neither, any stream but the "$" system streams. It is a regex
// rather than the filter's prefix list because the server compares prefixes with culture-aware
// rules, and regex literals byte for byte; it uses only anchors, escapes and a negated class, which
// the server's .NET engine and Go's read alike. The adapter's own streams and "$" event types are
// dropped client-side.
func serverFilter(namespace, prefix string) *esdbclient.SubscriptionFilter {
	re := `^[^$]`
	if namespace+prefix != "" {
		re = "^" + regexp.QuoteMeta(namespace+prefix)
	}
	return &esdbclient.SubscriptionFilter{Type: esdbclient.StreamFilterType, Regex: re}
}

// visible reports whether an event of EventStoreDB stream esStream with type typ belongs to the
// global log of namespace: in the namespace, not a system event, not the adapter's bookkeeping.
func visible(namespace, esStream, typ string) (stream string, ok bool) {
	stream, ok = strings.CutPrefix(esStream, namespace)
	if !ok || strings.HasPrefix(typ, "$") || checkStreamID(stream) != nil {
		return "", false
	}
	return stream, true
}

// idSpace namespaces the event ids the adapter derives for its reservation events.
var idSpace = uuid.MustParse("5b0e7f2c-3d52-4d0e-9a1b-6f3c2e8d4a71")

// derivedID is the id of a reservation event written on behalf of one append: the same append
// (same stream, same first event id) retried derives the same ids, so EventStoreDB's idempotency
// and the adopt-your-own-claim rule recognise it.
func derivedID(purpose, stream string, first uuid.UUID, key string) uuid.UUID {
	return uuid.NewSHA1(idSpace, []byte(purpose+"\x00"+stream+"\x00"+first.String()+"\x00"+key))
}
