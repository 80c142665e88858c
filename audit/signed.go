package audit

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// TreeHead is what a signed checkpoint states: the tree of Size events had root Root at Time.
// Signed, it is a note (golang.org/x/mod/sumdb/note) whose text follows the C2SP tlog-checkpoint
// form, with one extension line for the time:
//
//	<origin>\n
//	<size, decimal>\n
//	<root hash, standard base64>\n
//	time <RFC 3339, UTC, six fractional digits>\n
//
// then a blank line and the signature line "— <key name> <base64 of key hash and Ed25519
// signature>". The origin is the name of the audit key, so a verifier knows which key to ask for.
type TreeHead struct {
	Origin string    `json:"origin"`
	Size   uint64    `json:"size"`
	Root   Hash      `json:"root"`
	Time   time.Time `json:"time"`
}

// Errors of signed checkpoints.
var (
	// ErrCheckpointSignature: a checkpoint is not signed by the audit key given.
	ErrCheckpointSignature = errors.New("audit: the checkpoint's signature does not verify with the audit key")
	// ErrCheckpointFormat: a checkpoint's text is not a tree head.
	ErrCheckpointFormat = errors.New("audit: malformed checkpoint")
)

func (h TreeHead) text() string {
	return fmt.Sprintf("%s\n%d\n%s\ntime %s\n", h.Origin, h.Size, base64.StdEncoding.EncodeToString(h.Root[:]), h.Time.UTC().Format(recordedAtLayout))
}

// Sign returns h signed by signer as a note; h.Origin must be the signer's name.
func (h TreeHead) Sign(signer note.Signer) ([]byte, error) {
	if h.Origin != signer.Name() {
		return nil, fmt.Errorf("audit: checkpoint origin %q is not the audit key's name %q", h.Origin, signer.Name())
	}
	msg, err := note.Sign(&note.Note{Text: h.text()}, signer)
	if err != nil {
		return nil, fmt.Errorf("audit: sign checkpoint: %w", err)
	}
	return msg, nil
}

// OpenCheckpoint checks that msg is a checkpoint signed by the audit key whose verifier key (as
// NewAuditKey writes it) is vkey, and returns what it states. A bad signature, or a checkpoint of
// another key, is ErrCheckpointSignature.
func OpenCheckpoint(msg []byte, vkey string) (TreeHead, error) {
	v, err := note.NewVerifier(strings.TrimSpace(vkey))
	if err != nil {
		return TreeHead{}, fmt.Errorf("audit: audit public key: %w", err)
	}
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		// Unsigned, signed by another key, or a signature that fails: refused alike.
		return TreeHead{}, fmt.Errorf("%w: %v", ErrCheckpointSignature, err)
	}
	return parseTreeHead(n.Text, v.Name())
}

func parseTreeHead(text, origin string) (TreeHead, error) {
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	bad := func(what string) (TreeHead, error) {
		return TreeHead{}, fmt.Errorf("%w: %s", ErrCheckpointFormat, what)
	}
	if len(lines) < 4 {
		return bad(fmt.Sprintf("%d lines, want origin, size, root and time", len(lines)))
	}
	h := TreeHead{Origin: lines[0]}
	if h.Origin != origin {
		return bad(fmt.Sprintf("origin %q is not the key's name %q", h.Origin, origin))
	}
	size, err := strconv.ParseUint(lines[1], 10, 64)
	if err != nil || strconv.FormatUint(size, 10) != lines[1] {
		return bad(fmt.Sprintf("size %q", lines[1]))
	}
	h.Size = size
	root, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(root) != len(h.Root) {
		return bad(fmt.Sprintf("root %q", lines[2]))
	}
	copy(h.Root[:], root)
	at, ok := strings.CutPrefix(lines[3], "time ")
	if !ok {
		return bad(fmt.Sprintf("line 4 %q is not the time", lines[3]))
	}
	if h.Time, err = time.Parse(time.RFC3339Nano, at); err != nil {
		return bad(fmt.Sprintf("time %q", at))
	}
	return h, nil
}

// SplitCheckpoints cuts a file of signed checkpoints written one after another (as the
// CheckpointFile does) into notes. Each note is its text, a blank line, and its signature lines.
func SplitCheckpoints(data []byte) [][]byte {
	var out [][]byte
	start, inSigs := 0, false
	for off := 0; off < len(data); {
		end := bytes.IndexByte(data[off:], '\n')
		if end < 0 {
			end = len(data)
		} else {
			end += off + 1
		}
		line := data[off:end]
		switch {
		case inSigs && !bytes.HasPrefix(line, []byte("— ")):
			out = append(out, data[start:off])
			start, inSigs = off, false
			if len(bytes.TrimSpace(line)) == 0 { // a blank line between notes
				start = end
			}
		case !inSigs && bytes.Equal(line, []byte("\n")) && off > start:
			inSigs = true
		}
		off = end
	}
	if start < len(data) && len(bytes.TrimSpace(data[start:])) > 0 {
		out = append(out, data[start:])
	}
	return out
}

// NewAuditKey makes a new audit key named name (the checkpoints' origin, e.g. the host name of
// the idlog deployment): the signer key to keep secret, and the verifier key to give auditors.
func NewAuditKey(name string) (signer, verifier string, err error) {
	return note.GenerateKey(rand.Reader, name)
}

// ParseAuditKey reads an audit key file: the signer key on its first line, the verifier key on
// its second, as NewAuditKey makes them.
func ParseAuditKey(text []byte) (note.Signer, string, error) {
	lines := strings.Fields(string(text))
	if len(lines) != 2 {
		return nil, "", fmt.Errorf("audit: an audit key file holds 2 lines (signer key, verifier key), not %d", len(lines))
	}
	s, err := note.NewSigner(lines[0])
	if err != nil {
		return nil, "", fmt.Errorf("audit: audit key: %w", err)
	}
	v, err := note.NewVerifier(lines[1])
	if err != nil || v.Name() != s.Name() || v.KeyHash() != s.KeyHash() {
		return nil, "", fmt.Errorf("audit: audit key: the verifier key does not belong to the signer key")
	}
	return s, lines[1], nil
}

// CheckpointFile appends every signed checkpoint it is handed to a file, outside the database:
// an auditor's copy, for `idlog audit verify -checkpoint`. It implements CheckpointPublisher; a
// checkpoint without a signature is skipped. After a crash it may append the same checkpoint
// twice, which readers ignore.
type CheckpointFile struct {
	Path string

	mu   sync.Mutex
	last uint64
}

// PublishCheckpoint appends c's signed note and syncs the file.
func (f *CheckpointFile) PublishCheckpoint(_ context.Context, c Checkpoint) error {
	if c.Note == "" {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if c.Ordinal <= f.last {
		return nil
	}
	file, err := os.OpenFile(f.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("audit: checkpoint file: %w", err)
	}
	_, err = file.WriteString(c.Note)
	if err == nil {
		err = file.Sync()
	}
	if cerr := file.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("audit: checkpoint file: %w", err)
	}
	f.last = c.Ordinal
	return nil
}

// Publishers hands each checkpoint to every publisher in turn; the first failure stops it (and
// the sealer hands the checkpoint to all of them again later).
type Publishers []CheckpointPublisher

// PublishCheckpoint implements CheckpointPublisher.
func (ps Publishers) PublishCheckpoint(ctx context.Context, c Checkpoint) error {
	for _, p := range ps {
		if err := p.PublishCheckpoint(ctx, c); err != nil {
			return err
		}
	}
	return nil
}
