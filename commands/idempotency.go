package commands

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/google/uuid"
)

// ErrIdempotencyKeyReused: an idempotency key came back with another request than the one it
// was first used with (another email address to register, say).
var ErrIdempotencyKeyReused = errors.New("commands: idempotency key reused for another request")

const idempotencyKeyPrefix = "idempotency:"

// idempotencyNamespace seeds the event ids derived from idempotency keys (UUIDv5).
var idempotencyNamespace = uuid.MustParse("7f6d1f8e-1c0b-4e0a-9a57-6b1d2c3e4f50")

// idempotency is what a command derives from its idempotency key: the unique key its append
// claims, and a seed for event and session ids, so that a retried append is recognised as one.
// The zero value (no key) claims nothing and leaves ids to the store.
type idempotency struct {
	claim string
	seed  [sha256.Size]byte
}

// newIdempotency scopes the key to the command and the actor: two signed-in users, or two
// commands, never share a key. Anonymous callers all have the actor "": their keys must be bound
// to the request by whoever sets them (the API derives them from caller, route, key and body).
// The hash keeps the claim short whatever the key.
func newIdempotency(command string, m Meta) (idempotency, error) {
	if m.IdempotencyKey == "" {
		return idempotency{}, nil
	}
	if len(m.IdempotencyKey) > maxIdempotencyKey {
		return idempotency{}, fmt.Errorf("%w: idempotency key of %d bytes, at most %d", ErrCommandInvalid, len(m.IdempotencyKey), maxIdempotencyKey)
	}
	seed := sha256.Sum256([]byte("idlog idempotency\x00" + command + "\x00" + m.ActorUID + "\x00" + m.IdempotencyKey))
	return idempotency{claim: idempotencyKeyPrefix + hex.EncodeToString(seed[:]), seed: seed}, nil
}

// eventID is the id of the command's i-th event: derived from the key, or zero (the store draws
// one) without a key.
func (i idempotency) eventID(n int) uuid.UUID {
	if i.claim == "" {
		return uuid.Nil
	}
	data := binary.BigEndian.AppendUint32(i.seed[:len(i.seed):len(i.seed)], uint32(n))
	return uuid.NewSHA1(idempotencyNamespace, data)
}

// sessionID is the id of the session a sign-in with this key opens, "" without a key.
func (i idempotency) sessionID() string {
	if i.claim == "" {
		return ""
	}
	sum := sha256.Sum256(append([]byte("session\x00"), i.seed[:]...))
	return base64.RawURLEncoding.EncodeToString(sum[:16])
}
