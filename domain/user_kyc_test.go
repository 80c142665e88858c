package domain_test

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/idlog/idlog/domain"
)

func matchHash(want string) func(string) bool { return func(h string) bool { return h == want } }

var pngFile = domain.DocumentFile{ContentType: "image/png", Size: 100, SHA256: strings.Repeat("0f", 32)}

// The ladder climbs by itself: email, then phone, then a verified document.
func TestKYCClimbsTheLadder(t *testing.T) {
	t.Parallel()
	u := register(t)
	if _, err := u.RequestEmailVerification(tokenHash("e"), at(10)); err != nil {
		t.Fatal(err)
	}
	if _, err := u.VerifyEmail(tokenHash("e"), at(1)); err != nil {
		t.Fatal(err)
	}
	mustBe(t, "level after email", u.Level(), 1)

	if _, err := u.AddPhone("+33612345678", "fr", hash1, at(10), at(1)); err != nil {
		t.Fatal(err)
	}
	if _, err := u.AddPhone("+33612345678", "FR", hash1, at(10), at(1)); !errors.Is(err, domain.ErrPhoneExists) {
		t.Fatalf("same number again: %v", err)
	}
	events, err := u.VerifyPhone("+33612345678", matchHash(hash2), at(2))
	if !errors.Is(err, domain.ErrPhoneCodeInvalid) || events != nil {
		t.Fatalf("wrong code: %v %v", events, err)
	}
	if _, err := u.VerifyPhone("+33612345678", matchHash(hash1), at(11)); !errors.Is(err, domain.ErrPhoneCodeExpired) {
		t.Fatalf("expired code: %v", err)
	}
	if _, err := u.VerifyPhone("+4915112345678", matchHash(hash1), at(2)); !errors.Is(err, domain.ErrPhoneNotFound) {
		t.Fatalf("unknown number: %v", err)
	}
	events, err = u.VerifyPhone("+33612345678", matchHash(hash1), at(2))
	if err != nil {
		t.Fatal(err)
	}
	if got := types(events); !slices.Equal(got, []string{"PhoneVerified", "LabelAdded", "LevelChanged"}) {
		t.Fatalf("verify events %v", got)
	}
	mustBe(t, "level after phone", u.Level(), 2)
	if _, err := u.VerifyPhone("+33612345678", matchHash(hash1), at(2)); !errors.Is(err, domain.ErrPhoneAlreadyVerified) {
		t.Fatalf("spent code: %v", err)
	}
	if ph := u.Phones(); len(ph) != 1 || ph[0].Country != "FR" || ph[0].VerifiedAt.IsZero() {
		t.Fatalf("phones %+v", ph)
	}

	doc := domain.NewDocument{ID: "d1", DocType: "passport", DocNumber: "AB123", File: pngFile}
	if _, err := u.UploadDocument(doc, at(3)); err != nil {
		t.Fatal(err)
	}
	if _, err := u.ReviewDocument("d1", domain.DocumentRejected, ""); !errors.Is(err, domain.ErrDocumentReasonInvalid) {
		t.Fatalf("rejection without a reason: %v", err)
	}
	if _, err := u.ReviewDocument("d1", domain.DocumentRejected, "blurred"); err != nil {
		t.Fatal(err)
	}
	if l, _ := u.Label("document", domain.ScopePrivate); l.Value != "rejected" || u.Level() != 2 {
		t.Fatalf("after rejection: label %+v level %d", l, u.Level())
	}
	if d := u.Documents(); d[0].State != domain.DocumentRejected || d[0].Reason != "blurred" {
		t.Fatalf("document %+v", d[0])
	}
	doc.ID = "d2"
	if _, err := u.UploadDocument(doc, at(4)); err != nil {
		t.Fatal(err)
	}
	if _, err := u.ReviewDocument("d2", domain.DocumentVerified, ""); err != nil {
		t.Fatal(err)
	}
	mustBe(t, "level after document", u.Level(), 3)
	if _, err := u.ReviewDocument("nope", domain.DocumentVerified, ""); !errors.Is(err, domain.ErrDocumentNotFound) {
		t.Fatalf("unknown document: %v", err)
	}
}

func TestDocumentFields(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		edit  func(d *domain.NewDocument)
		field string
	}{
		{"no type", func(d *domain.NewDocument) { d.DocType = " " }, "doc_type"},
		{"no number", func(d *domain.NewDocument) { d.DocNumber = "" }, "doc_number"},
		{"bad expiry", func(d *domain.NewDocument) { d.DocExpire = "2030-13-01" }, "doc_expire"},
		{"expired", func(d *domain.NewDocument) { d.DocExpire = "2001-01-01" }, "doc_expire"},
		{"metadata array", func(d *domain.NewDocument) { d.Metadata = json.RawMessage(`[1]`) }, "metadata"},
		{"gif", func(d *domain.NewDocument) { d.File.ContentType = "image/gif" }, "upload"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := register(t)
			d := domain.NewDocument{ID: "d1", DocType: "passport", DocNumber: "AB123", File: pngFile}
			tc.edit(&d)
			events, err := u.UploadDocument(d, at(0))
			var fe *domain.DocumentFieldError
			if !errors.As(err, &fe) || fe.Field != tc.field || events != nil {
				t.Fatalf("got %v %v, want a %s field error", events, err, tc.field)
			}
		})
	}
}

func TestDataStorage(t *testing.T) {
	t.Parallel()
	u := register(t)
	if _, err := u.StoreData("bank", json.RawMessage(`{"iban": "FR76"}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := u.StoreData("bank", json.RawMessage(`{"iban":"x"}`)); !errors.Is(err, domain.ErrDataStorageExists) {
		t.Fatalf("same title: %v", err)
	}
	if _, err := u.StoreData("x", json.RawMessage(`"text"`)); !errors.Is(err, domain.ErrDataStorageInvalid) {
		t.Fatalf("not an object: %v", err)
	}
	if got := string(u.DataStorage()["bank"]); got != `{"iban":"FR76"}` {
		t.Fatalf("stored %s", got)
	}
	if _, err := u.DeleteDataStorage("nope"); !errors.Is(err, domain.ErrDataStorageNotFound) {
		t.Fatalf("unknown title: %v", err)
	}
	if _, err := u.DeleteDataStorage("bank"); err != nil || len(u.DataStorage()) != 0 {
		t.Fatalf("delete: %v, left %v", err, u.DataStorage())
	}
}
