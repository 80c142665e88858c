package eventbus

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"

	"github.com/idlog/idlog/auth"
)

// Signed messages. idlog signs every event it publishes, as Barong signs the messages of its
// event API, so that a consumer can tell idlog's events from anything else a NATS client managed
// to publish on idlog.events.>. The signature is part of the CloudEvent, so it survives any
// copy of the body (idlog events tail's output, an archive):
//
//	{"specversion":"1.0",...,"idlogkeyid":"<kid>","idlogsignature":"<sig>"}
//
// <sig> is the Ed25519 signature, unpadded base64url, of the body's bytes up to (not including)
// the member ,"idlogsignature":"<sig>" followed by the byte '}': the signature covers every other
// attribute, the key id included. Keys are published as a JWKS (kty OKP, crv Ed25519) at
// /.well-known/events-jwks.json and in the data directory.

// ErrEventSignature: a message carries no valid signature by a known key. See VerifyEvent.
var ErrEventSignature = errors.New("eventbus: event signature")

// signatureMember opens the last member of a signed message.
const signatureMember = `,"idlogsignature":"`

// EventSigner signs the events idlog publishes with an Ed25519 key. Safe for concurrent use.
type EventSigner struct {
	key   ed25519.PrivateKey
	kid   string
	order []string  // key ids, the signing key's first
	keys  EventKeys // the signing key's and the previous ones
}

// NewEventSigner returns a signer with key. previous are the public keys of keys that signed
// events before it: they stay in JWKS and Keys, so events already published keep verifying
// after the key changes.
func NewEventSigner(key ed25519.PrivateKey, previous ...ed25519.PublicKey) (*EventSigner, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("%w: an Ed25519 private key of %d bytes, want %d", ErrInvalidOptions, len(key), ed25519.PrivateKeySize)
	}
	s := &EventSigner{key: key, keys: EventKeys{}}
	for _, pub := range append([]ed25519.PublicKey{key.Public().(ed25519.PublicKey)}, previous...) {
		if len(pub) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("%w: an Ed25519 public key of %d bytes, want %d", ErrInvalidOptions, len(pub), ed25519.PublicKeySize)
		}
		kid := auth.KeyID(pub)
		if _, dup := s.keys[kid]; !dup {
			s.keys[kid] = pub
			s.order = append(s.order, kid)
		}
	}
	s.kid = s.order[0]
	return s, nil
}

// signBatch writes into sigs[i] the Ed25519 signature of msgs[i]. It signs with the standard
// library, one message at a time: a batch shares no secret computation, so the signing code is the
// one every Go program uses (the relay gets its speed from signing batches on every core).
func (s *EventSigner) signBatch(msgs [][]byte, sigs [][ed25519.SignatureSize]byte) {
	for i, m := range msgs {
		copy(sigs[i][:], ed25519.Sign(s.key, m))
	}
}

// KeyID is the id of the signing key, as idlogkeyid and the JWKS name it.
func (s *EventSigner) KeyID() string { return s.kid }

// JWKS are the public keys that verify the events, the signing key's first, for
// /.well-known/events-jwks.json.
func (s *EventSigner) JWKS() auth.JWKS {
	set := auth.JWKS{Keys: make([]auth.JWK, 0, len(s.order))}
	for _, kid := range s.order {
		set.Keys = append(set.Keys, auth.JWK{
			Kty: "OKP", Crv: "Ed25519", X: base64.RawURLEncoding.EncodeToString(s.keys[kid]),
			Kid: kid, Use: "sig", Alg: "EdDSA",
		})
	}
	return set
}

// Keys are the keys that verify the events: the signing key's and the previous ones.
func (s *EventSigner) Keys() EventKeys { return maps.Clone(s.keys) }

// appendSignature signs the JSON object b[start:] (which ends with '}') and returns b with the
// key id and the signature added as its last members.
func (s *EventSigner) appendSignature(b []byte, start int) []byte {
	b = s.appendKeyID(b)
	sig := ed25519.Sign(s.key, b[start:])
	return appendSigned(b[:start], b[start:], sig)
}

// appendKeyID adds the key id as the last member of the JSON object that ends b: what follows is
// the part a signature covers.
func (s *EventSigner) appendKeyID(b []byte) []byte {
	b = b[:len(b)-1]
	b = append(b, `,"idlogkeyid":"`...)
	b = append(b, s.kid...)
	return append(b, `"}`...)
}

// appendSigned appends to b the signed message: signed (which may share b's memory after len(b)),
// the part ending with the key id, with sig, its signature, as last member.
func appendSigned(b, signed, sig []byte) []byte {
	b = append(b, signed[:len(signed)-1]...)
	b = append(b, signatureMember...)
	b = base64.RawURLEncoding.AppendEncode(b, sig)
	return append(b, `"}`...)
}

// EventKeys are the public keys a consumer trusts, by key id.
type EventKeys map[string]ed25519.PublicKey

// ParseEventKeys reads a JWKS document, such as /.well-known/events-jwks.json serves: its
// Ed25519 keys (kty OKP, crv Ed25519). A document without one is an error.
func ParseEventKeys(doc []byte) (EventKeys, error) {
	var set auth.JWKS
	if err := json.Unmarshal(doc, &set); err != nil {
		return nil, fmt.Errorf("%w: the keys are no JWKS: %w", ErrEventSignature, err)
	}
	keys := EventKeys{}
	for _, k := range set.Keys {
		if k.Kty != "OKP" || k.Crv != "Ed25519" {
			continue
		}
		pub, err := base64.RawURLEncoding.DecodeString(k.X)
		if err != nil || len(pub) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("%w: key %q is no Ed25519 public key", ErrEventSignature, k.Kid)
		}
		kid := auth.KeyID(pub) // the id is the key's thumbprint, whatever the document says
		if k.Kid != "" && k.Kid != kid {
			return nil, fmt.Errorf("%w: key %q has the thumbprint %s", ErrEventSignature, k.Kid, kid)
		}
		keys[kid] = pub
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w: the JWKS holds no Ed25519 key", ErrEventSignature)
	}
	return keys, nil
}

// VerifyEvent checks that data, the body of a message received on subject, is an event idlog
// signed with one of keys, and returns it. It checks notifications and audit checkpoints as well
// (pass "" as their subject; decode the body as what it is). It fails, with an error matching ErrEventSignature,
// for a message without signature, signed by another key, altered after signing, or received on
// another subject than the event's own (pass "" when the subject is unknown, as for a line of
// idlog events tail).
func VerifyEvent(keys EventKeys, subject string, data []byte) (CloudEvent, error) {
	var ce CloudEvent
	signed, sig, err := splitSignature(data)
	if err != nil {
		return ce, err
	}
	if err := json.Unmarshal(signed, &ce); err != nil {
		return CloudEvent{}, fmt.Errorf("%w: the signed part is no JSON object: %w", ErrEventSignature, err)
	}
	key, ok := keys[ce.KeyID]
	if !ok {
		return CloudEvent{}, fmt.Errorf("%w: signed by the unknown key %q", ErrEventSignature, ce.KeyID)
	}
	if !ed25519.Verify(key, signed, sig) {
		return CloudEvent{}, fmt.Errorf("%w: the signature by key %q does not match the message", ErrEventSignature, ce.KeyID)
	}
	if want := eventsPrefix + subjectToken(ce.Type) + "." + ce.Subject; subject != "" && subject != want {
		return CloudEvent{}, fmt.Errorf("%w: event %s belongs on %s, not %s", ErrEventSignature, ce.ID, want, subject)
	}
	ce.Signature = base64.RawURLEncoding.EncodeToString(sig)
	return ce, nil
}

// splitSignature returns the bytes a signed message's signature covers, and the signature.
func splitSignature(data []byte) (signed, sig []byte, err error) {
	data = bytes.TrimRight(data, " \t\r\n")
	i := bytes.LastIndex(data, []byte(signatureMember))
	if i < 0 {
		return nil, nil, fmt.Errorf("%w: the message is not signed", ErrEventSignature)
	}
	text, ok := bytes.CutSuffix(data[i+len(signatureMember):], []byte(`"}`))
	if !ok {
		return nil, nil, fmt.Errorf("%w: idlogsignature is not the last member", ErrEventSignature)
	}
	// Strict: one spelling per signature, so a message cannot be altered into another that verifies.
	sig = make([]byte, base64.RawURLEncoding.DecodedLen(len(text)))
	if n, err := base64.RawURLEncoding.Strict().Decode(sig, text); err != nil || n != ed25519.SignatureSize {
		return nil, nil, fmt.Errorf("%w: idlogsignature is no Ed25519 signature", ErrEventSignature)
	}
	signed = make([]byte, i+1)
	copy(signed, data[:i])
	signed[i] = '}'
	return signed, sig, nil
}
