package eventbus

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/bits"
	"slices"
	"strconv"
	"sync"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

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

// batchTree is how many messages of a relay batch share one signature at most (see
// appendBatchSignatures). Each message carries its path to the signed root, one hash per level:
// 16 leaves cost 4 hashes (171 characters) per message and a sixteenth of a signature.
const batchTree = 16

// batchStatement is what a batch signature signs: the size and the RFC 6962 root of the tree whose
// leaves are the messages' signed parts. It begins with no '{', so no signature of a message
// body (a JSON object) is ever one of a batch, nor the other way round.
func batchStatement(size uint64, root []byte) []byte {
	b := make([]byte, 0, len(batchStatementPrefix)+20+1+2*sha256.Size)
	b = append(b, batchStatementPrefix...)
	b = strconv.AppendUint(b, size, 10)
	b = append(b, ':')
	return hex.AppendEncode(b, root)
}

const batchStatementPrefix = "idlog-batch:"

// appendBatchSignatures sets out[i] to the idlogsignature value of msgs[i], the signed parts of
// messages the relay publishes together, appended to buf, and returns buf. One message alone is
// signed directly (an Ed25519 signature of 86 characters). Two or more, in trees of up to
// batchTree, share one signature of their tree's root, and each value is
//
//	<signature of the root>.<leaf index>.<tree size>.<inclusion path>
//
// An Ed25519 signature costs more CPU than publishing the message: a relay that signs each event
// cannot keep up with JetStream on a small machine.
func (s *EventSigner) appendBatchSignatures(buf []byte, out, msgs [][]byte) []byte {
	for lo := 0; lo < len(msgs); lo += batchTree {
		tree := msgs[lo:min(len(msgs), lo+batchTree)]
		if len(tree) == 1 {
			start := len(buf)
			buf = base64.RawURLEncoding.AppendEncode(buf, ed25519.Sign(s.key, tree[0]))
			out[lo] = buf[start:len(buf):len(buf)]
			continue
		}
		root, paths := batchPaths(tree)
		sig := ed25519.Sign(s.key, batchStatement(uint64(len(tree)), root[:]))
		for i, path := range paths {
			start := len(buf)
			buf = base64.RawURLEncoding.AppendEncode(buf, sig)
			buf = append(buf, '.')
			buf = strconv.AppendInt(buf, int64(i), 10)
			buf = append(buf, '.')
			buf = strconv.AppendInt(buf, int64(len(tree)), 10)
			buf = append(buf, '.')
			buf = base64.RawURLEncoding.AppendEncode(buf, path)
			out[lo+i] = buf[start:len(buf):len(buf)]
		}
	}
	return buf
}

// batchProofText is how long the part after the signature is, at most, in a value of
// appendBatchSignatures.
const batchProofText = len(".15.16.") + (4*sha256.Size*4+2)/3

// batchPaths returns the RFC 6962 root of the tree whose leaves are msgs, and each leaf's
// inclusion path: its hashes from the leaf up, concatenated.
func batchPaths(msgs [][]byte) (root [sha256.Size]byte, paths [][]byte) {
	h := sha256.New()
	leaves := make([][sha256.Size]byte, len(msgs))
	for i, m := range msgs {
		h.Reset()
		h.Write(leafPrefix)
		h.Write(m)
		h.Sum(leaves[i][:0])
	}
	// A path has a hash per level: 4 at most in a tree of 16.
	levels := bits.Len(uint(len(msgs) - 1))
	buf := make([]byte, 0, len(msgs)*levels*sha256.Size)
	paths = make([][]byte, len(msgs))
	for i := range paths {
		paths[i] = buf[i*levels*sha256.Size : i*levels*sha256.Size : (i+1)*levels*sha256.Size]
	}
	return subtree(leaves, paths), paths
}

// subtree is RFC 6962's MTH of leaves (section 2.1), appending to paths[i] the sibling hashes
// above leaf i as it goes (PATH, section 2.1.1: the split is the largest power of two below n).
func subtree(leaves [][sha256.Size]byte, paths [][]byte) (node [sha256.Size]byte) {
	n := len(leaves)
	if n == 1 {
		return leaves[0]
	}
	k := 1 << (bits.Len(uint(n-1)) - 1)
	l, r := subtree(leaves[:k], paths[:k]), subtree(leaves[k:], paths[k:])
	for i := range paths[:k] {
		paths[i] = append(paths[i], r[:]...)
	}
	for i := range paths[k:] {
		paths[k+i] = append(paths[k+i], l[:]...)
	}
	// On the stack and hashed at once: a node costs no allocation.
	var in [1 + 2*sha256.Size]byte
	in[0] = rfc6962.RFC6962NodeHashPrefix
	copy(in[1:], l[:])
	copy(in[1+sha256.Size:], r[:])
	return sha256.Sum256(in[:])
}

// leafPrefix starts the hash of a leaf (RFC 6962, section 2.1).
var leafPrefix = []byte{rfc6962.RFC6962LeafHashPrefix}

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
	return appendSigned(b[:start], b[start:], base64.RawURLEncoding.AppendEncode(nil, sig))
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
// the part ending with the key id, with value, the text of its signature, as last member.
func appendSigned(b, signed, value []byte) []byte {
	b = append(b, signed[:len(signed)-1]...)
	b = append(b, signatureMember...)
	b = append(b, value...)
	return append(b, `"}`...)
}

// signedLen is how long appendSigned makes the message of signed and value.
func signedLen(signed, value []byte) int {
	return len(signed) - 1 + len(signatureMember) + len(value) + len(`"}`)
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
// (pass "" as their subject; decode the body as what it is). It fails, with an error matching
// ErrEventSignature, for a message without signature, signed by another key, altered after
// signing, or received on another subject than the event's own (pass "" when the subject is
// unknown, as for a line of idlog events tail). It takes both forms of signature (see
// appendBatchSignatures): one of the message, and one of a batch's root with the message's
// inclusion path. An EventVerifier does the same and checks a batch's signature once for all its
// messages.
func VerifyEvent(keys EventKeys, subject string, data []byte) (CloudEvent, error) {
	return verifyEvent(keys, subject, data, nil)
}

// EventVerifier verifies events as VerifyEvent does, and remembers the batch signatures it
// found valid lately: the other messages of a batch then cost their path's hashes, not an
// Ed25519 verification each. Safe for concurrent use.
type EventVerifier struct {
	keys EventKeys
	mu   sync.Mutex
	seen [verifiedRoots][sha256.Size]byte // digests of (key id, statement, signature) found valid
	next int
}

// verifiedRoots is how many batch signatures an EventVerifier remembers: a consumer reads a
// batch's messages one after the other, and a few batches may interleave when it filters.
const verifiedRoots = 64

// NewEventVerifier returns a verifier that trusts keys.
func NewEventVerifier(keys EventKeys) *EventVerifier { return &EventVerifier{keys: maps.Clone(keys)} }

// Verify is VerifyEvent with v's keys.
func (v *EventVerifier) Verify(subject string, data []byte) (CloudEvent, error) {
	return verifyEvent(v.keys, subject, data, v)
}

// digest names a valid signature of statement by kid: what the verifier remembers.
func (v *EventVerifier) digest(kid string, statement, sig []byte) [sha256.Size]byte {
	h := sha256.New()
	for _, part := range [][]byte{[]byte(kid), statement, sig} {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(part)))
		h.Write(n[:])
		h.Write(part)
	}
	var d [sha256.Size]byte
	h.Sum(d[:0])
	return d
}

func (v *EventVerifier) knows(d [sha256.Size]byte) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return slices.Contains(v.seen[:], d)
}

func (v *EventVerifier) remember(d [sha256.Size]byte) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.seen[v.next] = d
	v.next = (v.next + 1) % verifiedRoots
}

func verifyEvent(keys EventKeys, subject string, data []byte, v *EventVerifier) (CloudEvent, error) {
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
	covered := signed
	if sig.size > 0 {
		root, err := proof.RootFromInclusionProof(rfc6962.DefaultHasher, sig.index, sig.size, rfc6962.DefaultHasher.HashLeaf(signed), sig.path)
		if err != nil {
			return CloudEvent{}, fmt.Errorf("%w: the inclusion path does not fit a tree of %d: %w", ErrEventSignature, sig.size, err)
		}
		covered = batchStatement(sig.size, root)
	}
	// A verifier remembers batch signatures only: one of a message serves that message alone.
	remembering := v != nil && sig.size > 0
	var d [sha256.Size]byte
	if remembering {
		d = v.digest(ce.KeyID, covered, sig.sig)
	}
	if !remembering || !v.knows(d) {
		if !ed25519.Verify(key, covered, sig.sig) {
			return CloudEvent{}, fmt.Errorf("%w: the signature by key %q does not match the message", ErrEventSignature, ce.KeyID)
		}
		if remembering {
			v.remember(d)
		}
	}
	if want := eventsPrefix + subjectToken(ce.Type) + "." + ce.Subject; subject != "" && subject != want {
		return CloudEvent{}, fmt.Errorf("%w: event %s belongs on %s, not %s", ErrEventSignature, ce.ID, want, subject)
	}
	ce.Signature = sig.text
	return ce, nil
}

// signature is an idlogsignature value, parsed: an Ed25519 signature of the message, or (size
// above 0) of the root of a batch, the message being leaf index of size, with its path.
type signature struct {
	text        string
	sig         []byte
	index, size uint64
	path        [][]byte
}

// splitSignature returns the bytes a signed message's signature covers, and the signature.
func splitSignature(data []byte) (signed []byte, sig signature, err error) {
	data = bytes.TrimRight(data, " \t\r\n")
	i := bytes.LastIndex(data, []byte(signatureMember))
	if i < 0 {
		return nil, sig, fmt.Errorf("%w: the message is not signed", ErrEventSignature)
	}
	text, ok := bytes.CutSuffix(data[i+len(signatureMember):], []byte(`"}`))
	if !ok {
		return nil, sig, fmt.Errorf("%w: idlogsignature is not the last member", ErrEventSignature)
	}
	if sig, ok = parseSignature(text); !ok {
		return nil, sig, fmt.Errorf("%w: idlogsignature is no Ed25519 signature, of the message or of a batch", ErrEventSignature)
	}
	signed = make([]byte, i+1)
	copy(signed, data[:i])
	signed[i] = '}'
	return signed, sig, nil
}

// parseSignature reads an idlogsignature value. Strict: one spelling per signature (base64url
// without padding, decimals without leading zeros), so a message cannot be altered into another
// that verifies.
func parseSignature(text []byte) (signature, bool) {
	sig := signature{text: string(text)}
	parts := bytes.Split(text, []byte("."))
	if len(parts) != 1 && len(parts) != 4 {
		return sig, false
	}
	var ok bool
	if sig.sig, ok = decodeStrict(parts[0]); !ok || len(sig.sig) != ed25519.SignatureSize {
		return sig, false
	}
	if len(parts) == 1 {
		return sig, true
	}
	index, ok1 := parseDecimal(parts[1])
	size, ok2 := parseDecimal(parts[2])
	path, ok3 := decodeStrict(parts[3])
	if !ok1 || !ok2 || !ok3 || size < 2 || index >= size || len(path)%sha256.Size != 0 {
		return sig, false
	}
	sig.index, sig.size = index, size
	for len(path) > 0 {
		sig.path = append(sig.path, path[:sha256.Size])
		path = path[sha256.Size:]
	}
	return sig, true
}

func decodeStrict(text []byte) ([]byte, bool) {
	b := make([]byte, base64.RawURLEncoding.DecodedLen(len(text)))
	n, err := base64.RawURLEncoding.Strict().Decode(b, text)
	return b[:n], err == nil
}

// parseDecimal reads a decimal of at most 9 digits, without a sign or leading zeros.
func parseDecimal(text []byte) (uint64, bool) {
	if len(text) == 0 || len(text) > 9 || len(text) > 1 && text[0] == '0' {
		return 0, false
	}
	var n uint64
	for _, c := range text {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, true
}
