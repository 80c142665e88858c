package audit_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/idlog/idlog/audit"
)

// The witness receives each signed checkpoint once, as the note text; a refusal fails the publish
// so that the sealer hands it over again.
func TestWitnessReceivesSignedCheckpoints(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var got []string
	refuse := true
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		if r.Method != http.MethodPost || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/plain") {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		if refuse {
			refuse = false
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		got = append(got, string(body))
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()
	w := &audit.Witness{URL: srv.URL}
	note := "idlog-audit\n5\nroot\n\n— idlog-audit sig\n"
	if err := w.PublishCheckpoint(t.Context(), audit.Checkpoint{Ordinal: 5, Note: note}); err == nil {
		t.Fatal("a refused checkpoint was taken as received")
	}
	for range 2 { // the second is the same checkpoint again: skipped
		if err := w.PublishCheckpoint(t.Context(), audit.Checkpoint{Ordinal: 5, Note: note}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.PublishCheckpoint(t.Context(), audit.Checkpoint{Ordinal: 6}); err != nil { // unsigned: skipped
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || got[0] != note {
		t.Fatalf("the witness received %q, want the note once", got)
	}
}
