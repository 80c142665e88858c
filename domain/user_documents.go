package domain

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// A user's identity documents, Barong's Document (KYC). The file itself is never in the log: it
// lives in a blob store, and the events keep its metadata and SHA-256. An administrator verifies
// or rejects each document; a verified one gives the private label document=verified (the third
// rung of DefaultLevels), a rejection the label document=rejected, unless another document of the
// user is verified, and a reason the user sees. The document number is personal data: it
// travels in the fields named doc_number only.

// DocumentLabelKey is the label a reviewed document gives: LabelValueVerified or
// DocumentLabelRejected.
const (
	DocumentLabelKey      = "document"
	DocumentLabelRejected = "rejected"
)

// Limits of documents.
const (
	MaxDocuments           = 20
	MaxDocumentFieldBytes  = 128
	MaxDocumentMetadata    = 4 << 10
	MaxDocumentReasonBytes = 500
)

// DocumentState is where a document stands in its review.
type DocumentState string

// The states of a document.
const (
	DocumentPending  DocumentState = "pending"
	DocumentVerified DocumentState = "verified"
	DocumentRejected DocumentState = "rejected"
)

// ParseDocumentReview returns the state an administrator may give a document (verified or
// rejected), or ErrDocumentStateInvalid.
func ParseDocumentReview(s string) (DocumentState, error) {
	switch st := DocumentState(s); st {
	case DocumentVerified, DocumentRejected:
		return st, nil
	}
	return "", fmt.Errorf("%w: %q (want verified or rejected)", ErrDocumentStateInvalid, s)
}

// Errors of documents.
var (
	// ErrDocumentInvalid: a document field is malformed; the *DocumentFieldError that wraps it
	// names the field.
	ErrDocumentInvalid = errors.New("domain: invalid document field")
	// ErrDocumentLimit: the user has MaxDocuments documents already.
	ErrDocumentLimit = errors.New("domain: too many documents")
	// ErrDocumentNotFound: the user has no document of that id.
	ErrDocumentNotFound = errors.New("domain: no such document")
	// ErrDocumentStateInvalid: a review to another state than verified or rejected.
	ErrDocumentStateInvalid = errors.New("domain: invalid document state")
	// ErrDocumentReasonInvalid: a rejection's reason is missing, too long or holds control
	// characters.
	ErrDocumentReasonInvalid = errors.New("domain: invalid document rejection reason")
)

// DocumentFieldError says which document field was refused; it matches ErrDocumentInvalid.
type DocumentFieldError struct {
	Field  string // doc_type, doc_number, doc_expire, metadata, upload
	Reason string
}

func (e *DocumentFieldError) Error() string {
	return fmt.Sprintf("%v: %s %s", ErrDocumentInvalid, e.Field, e.Reason)
}

// Is makes a DocumentFieldError match ErrDocumentInvalid.
func (e *DocumentFieldError) Is(target error) bool { return target == ErrDocumentInvalid }

// DocumentFile is what the log knows of a document's file: its type (sniffed from the content),
// size and SHA-256 (hex), by which the blob store finds it.
type DocumentFile struct {
	ContentType string `json:"content_type"`
	Size        int64  `json:"size"`
	SHA256      string `json:"sha256"`
}

// NewDocument is what a user uploads: Barong's fields and the file. ID is drawn by the caller.
type NewDocument struct {
	ID        string
	DocType   string
	DocNumber string
	DocExpire string // YYYY-MM-DD, optional
	Metadata  json.RawMessage
	File      DocumentFile
}

// Document is one of a user's documents.
type Document struct {
	ID         string
	DocType    string
	DocNumber  string
	DocExpire  string
	Metadata   json.RawMessage
	File       DocumentFile
	State      DocumentState
	Reason     string // why it was rejected
	UploadedAt time.Time
}

// DocumentUploaded: the user uploaded a document. DocNumber is personal data.
type DocumentUploaded struct {
	DocumentID string          `json:"document_id"`
	DocType    string          `json:"doc_type"`
	DocNumber  string          `json:"doc_number" personal:"true"`
	DocExpire  string          `json:"doc_expire,omitempty"`
	Metadata   json.RawMessage `json:"metadata,omitempty" personal:"true"`
	File       DocumentFile    `json:"file"`
	At         time.Time       `json:"at"`
}

// DocumentReviewed: an administrator moved the document to State (verified or rejected), with
// Reason for a rejection, shown to the user.
type DocumentReviewed struct {
	DocumentID string        `json:"document_id"`
	State      DocumentState `json:"state"`
	Reason     string        `json:"reason,omitempty"`
}

func (DocumentUploaded) EventType() string { return "DocumentUploaded" }
func (DocumentReviewed) EventType() string { return "DocumentReviewed" }

func checkDocumentText(field, s string, required bool) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" && required {
		return "", &DocumentFieldError{Field: field, Reason: "is missing"}
	}
	if len(s) > MaxDocumentFieldBytes {
		return "", &DocumentFieldError{Field: field, Reason: fmt.Sprintf("is longer than %d bytes", MaxDocumentFieldBytes)}
	}
	if reason := checkProfileText(s); reason != "" {
		return "", &DocumentFieldError{Field: field, Reason: reason}
	}
	return s, nil
}

func checkDocumentFile(f DocumentFile) error {
	switch f.ContentType {
	case "image/jpeg", "image/png", "application/pdf":
	default:
		return &DocumentFieldError{Field: "upload", Reason: "is not a JPEG, PNG or PDF file"}
	}
	if f.Size <= 0 {
		return &DocumentFieldError{Field: "upload", Reason: "is empty"}
	}
	if err := checkTokenHash(f.SHA256); err != nil {
		return fmt.Errorf("%w: document SHA-256", ErrInvalidArgument)
	}
	return nil
}

// UploadDocument records the user's new document, pending review. ID must be new (1-64
// characters of [A-Za-z0-9_.:-]).
func (u *User) UploadDocument(d NewDocument, now time.Time) ([]Event, error) {
	if err := u.requireActive(); err != nil {
		return nil, err
	}
	if err := checkSessionID(d.ID); err != nil || u.documentOf(d.ID) != nil {
		return nil, fmt.Errorf("%w: document id %q", ErrInvalidArgument, d.ID)
	}
	var err error
	e := DocumentUploaded{DocumentID: d.ID, File: d.File, At: now.UTC()}
	if e.DocType, err = checkDocumentText("doc_type", d.DocType, true); err != nil {
		return nil, err
	}
	if e.DocNumber, err = checkDocumentText("doc_number", d.DocNumber, true); err != nil {
		return nil, err
	}
	if s := strings.TrimSpace(d.DocExpire); s != "" {
		t, perr := time.Parse(time.DateOnly, s)
		if perr != nil {
			return nil, &DocumentFieldError{Field: "doc_expire", Reason: "is not a date (YYYY-MM-DD)"}
		}
		if !t.After(now) {
			return nil, &DocumentFieldError{Field: "doc_expire", Reason: "is in the past"}
		}
		e.DocExpire = t.Format(time.DateOnly)
	}
	if e.Metadata, err = jsonObject(d.Metadata, MaxDocumentMetadata); err != nil {
		return nil, &DocumentFieldError{Field: "metadata", Reason: err.Error()}
	}
	if err := checkDocumentFile(d.File); err != nil {
		return nil, err
	}
	if len(u.documents) >= MaxDocuments {
		return nil, fmt.Errorf("%w: user %s has %d", ErrDocumentLimit, u.id, len(u.documents))
	}
	return u.record(e), nil
}

// ReviewDocument is an administrator's verdict on the document: verified gives the private label
// document=verified; rejected needs a reason, which the user sees, and gives document=rejected
// unless another of the user's documents is verified. Works in any state of the account but
// closed; the same verdict again is ErrUnchanged.
func (u *User) ReviewDocument(id string, to DocumentState, reason string) ([]Event, error) {
	if err := u.requireOpen(); err != nil {
		return nil, err
	}
	if _, err := ParseDocumentReview(string(to)); err != nil {
		return nil, err
	}
	reason = strings.TrimSpace(reason)
	if to == DocumentRejected && reason == "" || len(reason) > MaxDocumentReasonBytes || strings.ContainsFunc(reason, isControl) {
		return nil, fmt.Errorf("%w: %d bytes", ErrDocumentReasonInvalid, len(reason))
	}
	if to == DocumentVerified {
		reason = ""
	}
	d := u.documentOf(id)
	if d == nil {
		return nil, fmt.Errorf("%w: %q of user %s", ErrDocumentNotFound, id, u.id)
	}
	if d.State == to && d.Reason == reason {
		return nil, fmt.Errorf("%w: document already %s", ErrUnchanged, to)
	}
	events := u.record(DocumentReviewed{DocumentID: id, State: to, Reason: reason})
	label := DocumentLabelRejected
	if u.hasVerifiedDocument() {
		label = LabelValueVerified
	}
	return append(events, u.setPrivateLabel(DocumentLabelKey, label)...), nil
}

func (u *User) hasVerifiedDocument() bool {
	for _, d := range u.documents {
		if d.State == DocumentVerified {
			return true
		}
	}
	return false
}

func (u *User) documentOf(id string) *Document {
	for i := range u.documents {
		if u.documents[i].ID == id {
			return &u.documents[i]
		}
	}
	return nil
}

// Documents lists the user's documents in the order they were uploaded.
func (u *User) Documents() []Document { return append([]Document(nil), u.documents...) }

func (u *User) applyDocument(e Event) {
	switch e := e.(type) {
	case DocumentUploaded:
		u.documents = append(u.documents, Document{
			ID: e.DocumentID, DocType: e.DocType, DocNumber: e.DocNumber, DocExpire: e.DocExpire, Metadata: e.Metadata,
			File: e.File, State: DocumentPending, UploadedAt: e.At,
		})
	case DocumentReviewed:
		if d := u.documentOf(e.DocumentID); d != nil {
			d.State, d.Reason = e.State, e.Reason
		}
	}
}
