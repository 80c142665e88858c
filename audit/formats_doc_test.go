package audit_test

import (
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/idlog/idlog/audit"
	"github.com/idlog/idlog/eventstore"
)

// docExample is the event of docs/audit-formats.md's worked example.
func docExample() eventstore.Event {
	return eventstore.Event{
		ID:       uuid.MustParse("0192f1a0-0000-7000-8000-000000000001"),
		StreamID: "user-ID00000001AB", StreamVersion: 1, Type: "UserRegistered", SchemaVersion: 1,
		RecordedAt: time.Date(2026, 12, 3, 9, 0, 0, 123456000, time.UTC),
		Metadata:   eventstore.Metadata{ActorUID: "ID00000001AB", IP: "192.0.2.7"},
		Data:       []byte(`{"uid":"ID00000001AB","email":"a@example.com"}`),
	}
}

// TestFormatsDocument: the worked example of docs/audit-formats.md shows the canonical bytes and
// the leaf hash idlog computes, so that an auditor who follows the document with other tools gets
// the same figures.
func TestFormatsDocument(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("../docs/audit-formats.md")
	if err != nil {
		t.Fatal(err)
	}
	canonical := audit.AppendCanonical(nil, 1, docExample())
	var lines []string
	for off := 0; off < len(canonical); off += 32 {
		lines = append(lines, hex.EncodeToString(canonical[off:min(off+32, len(canonical))]))
	}
	want := strings.Join(lines, "\n")
	leaf := audit.LeafHash(canonical)
	if os.Getenv("IDLOG_PRINT_DOC_EXAMPLE") != "" {
		t.Logf("canonical:\n%s\nleaf hash: %s", want, leaf)
	}
	if !strings.Contains(string(doc), want) {
		t.Errorf("the document does not show the example's canonical bytes:\n%s", want)
	}
	if !strings.Contains(string(doc), "leaf hash: "+leaf.String()) {
		t.Errorf("the document does not show the example's leaf hash %s", leaf)
	}
}
