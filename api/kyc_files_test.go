package api_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/idlog/idlog/blobs"
	"github.com/idlog/idlog/domain"
)

// blobFiles are the names of the files in a directory blob store.
func blobFiles(t *testing.T, s *server) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	if err := s.blobs.Walk(context.Background(), func(sum string, _ time.Time) error {
		out[sum] = true
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// sweep runs one sweep of the directory store with no grace (nothing is being uploaded).
func sweep(t *testing.T, s *server) int {
	t.Helper()
	sw, err := blobs.NewSweeper(blobs.SweeperOptions{Store: s.blobs, Refs: s.kyc, Grace: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Millisecond) // past the grace
	n, err := sw.Sweep(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// A document's file refused after it was stored (the command failed) is deleted by the sweeper;
// the files of a closed account go too, unless an open account's document names the same bytes,
// whose file its owner still downloads.
func TestDocumentFilesSwept(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, s *server) {
		const documents = "/api/v2/resource/documents"
		ann, annTok := s.member(t, "ann")
		_, bobTok := s.member(t, "bob")
		_, adminTok := s.staff(t, "admin", domain.RoleAdmin)
		img := pngBytes(t)
		other := append(pngBytes(t), 0) // other bytes, still a PNG
		fields := map[string]string{"doc_type": "passport", "doc_number": "X123"}

		// Refused by the command after the API stored the file: an orphan.
		past := map[string]string{"doc_type": "passport", "doc_number": "X123", "doc_expire": "2001-01-01"}
		s.upload(t, annTok, past, "old.png", "image/png", other).want(t, http.StatusUnprocessableEntity)
		if !blobFiles(t, s)[blobs.Sum(other)] {
			t.Fatal("the refused upload stored no file: the test tests nothing")
		}
		s.upload(t, annTok, fields, "p.png", "image/png", img).want(t, http.StatusCreated)
		// Within the grace, an unnamed file may be an upload whose event is on its way: kept.
		patient, err := blobs.NewSweeper(blobs.SweeperOptions{Store: s.blobs, Refs: s.kyc})
		if err != nil {
			t.Fatal(err)
		}
		if n, err := patient.Sweep(context.Background()); n != 0 || err != nil {
			t.Fatalf("a sweep within the grace deleted %d files (%v)", n, err)
		}
		// A read model behind the log holds no sweep.
		behind, err := blobs.NewSweeper(blobs.SweeperOptions{Store: s.blobs, Refs: s.kyc, Grace: time.Nanosecond,
			Ready: func(context.Context) error { return errors.New("catching up") }})
		if err != nil {
			t.Fatal(err)
		}
		if n, err := behind.Sweep(context.Background()); n != 0 || !errors.Is(err, blobs.ErrNotReady) {
			t.Fatalf("a sweep with the read model behind: %d files, %v", n, err)
		}
		if n := sweep(t, s); n != 1 {
			t.Errorf("swept %d files, want the orphan", n)
		}
		if files := blobFiles(t, s); files[blobs.Sum(other)] || !files[blobs.Sum(img)] {
			t.Fatalf("after a sweep: %v, want the document's file and not the orphan", files)
		}

		// Ann's account closes: her own file goes, the one Bob's document names too stays.
		s.upload(t, annTok, fields, "mine.png", "image/png", other).want(t, http.StatusCreated)
		var bobDoc documentOut
		s.upload(t, bobTok, fields, "same.png", "image/png", img).want(t, http.StatusCreated).json(t, &bobDoc)
		s.send(http.MethodDelete, "/api/v2/admin/users/"+ann, nil, adminTok).want(t, http.StatusNoContent)
		if n := sweep(t, s); n != 1 {
			t.Errorf("swept %d files, want ann's own", n)
		}
		if files := blobFiles(t, s); files[blobs.Sum(other)] || !files[blobs.Sum(img)] || len(files) != 1 {
			t.Fatalf("after ann's account closed: %v, want only the file bob's document names", files)
		}
		r := s.get(documents+"/"+bobDoc.ID+"/upload", bobTok).want(t, http.StatusOK)
		if r.body != string(img) {
			t.Error("bob's document no longer downloads")
		}
	})
}

// Closing an account (DELETE /admin/users/{uid}, DELETE /resource/users/me) wakes the running
// sweeper, which deletes the account's files without waiting for its next turn.
func TestClosingAnAccountWakesTheSweeper(t *testing.T) {
	t.Parallel()
	s := newServer(t, "sqlite", serverOptions{})
	sw, err := blobs.NewSweeper(blobs.SweeperOptions{Store: s.blobs, Refs: s.kyc, Grace: time.Nanosecond, Every: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	s.accounts.KYC.Sweeper = sw
	gone := func(sum string) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); blobFiles(t, s)[sum]; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("the file %s is still there", sum)
			}
		}
	}
	ann, annTok := s.member(t, "ann")
	_, adminTok := s.staff(t, "admin", domain.RoleAdmin)
	fields := map[string]string{"doc_type": "passport", "doc_number": "X123"}
	orphan := append(pngBytes(t), 1)
	s.upload(t, annTok, map[string]string{"doc_type": "passport", "doc_number": "X1", "doc_expire": "2001-01-01"}, "o.png", "image/png", orphan).
		want(t, http.StatusUnprocessableEntity)
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		sw.Run(ctx)
	}()
	t.Cleanup(func() {
		stop()
		<-done
	})
	gone(blobs.Sum(orphan)) // the first sweep has run; the next is an hour away

	img := pngBytes(t)
	s.upload(t, annTok, fields, "p.png", "image/png", img).want(t, http.StatusCreated)
	s.send(http.MethodDelete, "/api/v2/admin/users/"+ann, nil, adminTok).want(t, http.StatusNoContent)
	gone(blobs.Sum(img))
}
