package commands

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"

	"github.com/idlog/idlog/domain"
)

// UploadDocument records an identity document the signed-in user uploaded (POST
// /resource/documents). The API has put the file in the blob store already; File says what it is.
type UploadDocument struct {
	Meta
	UID       domain.UserID
	DocType   string
	DocNumber string
	DocExpire string
	Metadata  json.RawMessage
	File      domain.DocumentFile
}

// UploadDocumentHandler handles UploadDocument.
type UploadDocumentHandler struct{ users *UserStreams }

// NewUploadDocumentHandler returns the handler.
func NewUploadDocumentHandler(users *UserStreams) UploadDocumentHandler {
	if users == nil {
		panic("commands: NewUploadDocumentHandler needs users")
	}
	return UploadDocumentHandler{users: users}
}

// newDocumentID is 16 random bytes in hex: document ids are in URLs, and must not be guessable or
// tell how many documents there are.
func newDocumentID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Handle records the document and returns its id. Errors: domain.ErrDocumentInvalid (a
// *domain.DocumentFieldError names the field), domain.ErrDocumentLimit, domain.ErrUserNotActive.
func (h UploadDocumentHandler) Handle(ctx context.Context, cmd UploadDocument) (Result, string, error) {
	var id string
	o, err := h.users.update(ctx, cmd.UID, "UploadDocument", cmd.Meta, func(u *domain.User) (change, error) {
		id = newDocumentID()
		events, err := u.UploadDocument(domain.NewDocument{
			ID: id, DocType: cmd.DocType, DocNumber: cmd.DocNumber, DocExpire: cmd.DocExpire, Metadata: cmd.Metadata, File: cmd.File,
		}, h.users.now())
		return change{events: events}, err
	})
	if err == nil {
		err = replayedOn(o, cmd.UID)
	}
	if err != nil {
		return Result{}, "", err
	}
	if o.replayed {
		// The first upload's id: its last document of that file.
		docs := o.user.Documents()
		for i := len(docs) - 1; i >= 0; i-- {
			if docs[i].File.SHA256 == cmd.File.SHA256 {
				id = docs[i].ID
				break
			}
		}
	}
	return resultOf(o), id, nil
}

// ReviewDocument is an administrator's verdict on a user's document: State verified or rejected
// (with a Reason the user sees). It needs AbilityChangeUserState, as a profile review.
type ReviewDocument struct {
	Meta
	UID        domain.UserID
	DocumentID string
	State      domain.DocumentState
	Reason     string
}

// ReviewDocumentHandler handles ReviewDocument.
type ReviewDocumentHandler struct{ users *UserStreams }

// NewReviewDocumentHandler returns the handler.
func NewReviewDocumentHandler(users *UserStreams) ReviewDocumentHandler {
	if users == nil {
		panic("commands: NewReviewDocumentHandler needs users")
	}
	return ReviewDocumentHandler{users: users}
}

// Handle reviews the document. Errors: ErrNotPermitted, ErrUserNotFound,
// domain.ErrDocumentNotFound, domain.ErrDocumentStateInvalid, domain.ErrDocumentReasonInvalid,
// domain.ErrUnchanged, domain.ErrAccountClosed.
func (h ReviewDocumentHandler) Handle(ctx context.Context, cmd ReviewDocument) (Result, error) {
	if err := authorize(cmd.Meta, AbilityChangeUserState); err != nil {
		return Result{}, err
	}
	o, err := h.users.update(ctx, cmd.UID, "ReviewDocument", cmd.Meta, func(u *domain.User) (change, error) {
		if err := authorizeOn(cmd.Meta, AbilityChangeUserState, u); err != nil {
			return change{}, err
		}
		events, err := u.ReviewDocument(cmd.DocumentID, cmd.State, cmd.Reason)
		return change{events: events}, err
	})
	if err == nil {
		err = replayedOn(o, cmd.UID)
	}
	if err != nil {
		return Result{}, err
	}
	return resultOf(o), nil
}
