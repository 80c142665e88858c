package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/idlog/idlog/blobs"
	"github.com/idlog/idlog/commands"
	"github.com/idlog/idlog/domain"
	"github.com/idlog/idlog/projections"
)

// KYC, Barong's user-data routes: phones (POST|GET /api/v2/resource/phones, POST
// /resource/phones/send_code and /resource/phones/verify), identity documents (POST|GET
// /api/v2/resource/documents, the file at /resource/documents/{id}/upload, GET
// /api/v2/admin/users/documents/pending, PUT /api/v2/admin/users/documents to verify or reject
// one) and data storage (POST /api/v2/resource/data_storage, DELETE
// /api/v2/admin/users/data_storage). Reads come from the KYC read model; document files from the
// blob store, through idlog only, to their owner and to roles that read users.

// Scopes of the KYC routes.
const (
	scopeResourcePhone       = "resource.phone"
	scopeResourceDocument    = "resource.document"
	scopeResourceDataStorage = "resource.data_storage"
	scopeAdminDocument       = "admin.document"
	scopeAdminDataStorage    = "admin.data_storage"
)

// DefaultMaxDocumentBytes bounds an uploaded document's file.
const DefaultMaxDocumentBytes = 10 << 20

// KYCRecords reads the KYC read model; *projections.KYCView is one.
type KYCRecords interface {
	Phones(ctx context.Context, uid string) ([]projections.UserPhone, error)
	Documents(ctx context.Context, uid string) ([]projections.UserDocument, error)
	// Document returns the document of that id, or an error matching projections.ErrNotFound.
	Document(ctx context.Context, id string) (projections.UserDocument, error)
	UsersWithPendingDocuments(ctx context.Context, f projections.PendingFilter) ([]string, int, error)
	DataStorage(ctx context.Context, uid string) ([]projections.DataRecord, error)
}

// KYC is what the KYC routes need.
type KYC struct {
	Records KYCRecords
	// Blobs keeps the documents' files, outside the event log.
	Blobs blobs.Store
	// MaxDocumentBytes bounds a file (0: DefaultMaxDocumentBytes).
	MaxDocumentBytes int64
	// Sweeper, when set, is woken when an account is closed, to delete the files its documents
	// named (blobs.Sweeper).
	Sweeper interface{ Wake() }
}

// closed wakes the files' sweeper after an account was closed.
func (a *accountRoutes) closed() {
	if a.KYC != nil && a.KYC.Sweeper != nil {
		a.KYC.Sweeper.Wake()
	}
}

// phoneJSON is Barong's Phone.
type phoneJSON struct {
	Country     string     `json:"country"`
	Number      string     `json:"number"`
	ValidatedAt *time.Time `json:"validated_at"`
}

func phoneJSONOf(p projections.UserPhone) phoneJSON {
	j := phoneJSON{Country: p.Country, Number: p.Number}
	if !p.ValidatedAt.IsZero() {
		t := p.ValidatedAt.UTC()
		j.ValidatedAt = &t
	}
	return j
}

// documentJSON is Barong's Document, with its id, review state and the rejection's reason.
// upload is the path of the file, served by idlog.
type documentJSON struct {
	ID          string          `json:"id"`
	Upload      string          `json:"upload"`
	DocType     string          `json:"doc_type"`
	DocNumber   string          `json:"doc_number"`
	DocExpire   *string         `json:"doc_expire"`
	Metadata    json.RawMessage `json:"metadata"`
	State       string          `json:"state"`
	Reason      *string         `json:"reason"`
	ContentType string          `json:"content_type"`
	Size        int64           `json:"size"`
	CreatedAt   time.Time       `json:"created_at"`
	UpdatedAt   time.Time       `json:"updated_at"`
}

func documentJSONOf(d projections.UserDocument) documentJSON {
	j := documentJSON{
		ID: d.ID, Upload: "/api/v2/resource/documents/" + d.ID + "/upload", DocType: d.DocType, DocNumber: d.DocNumber,
		DocExpire: orNull(d.DocExpire), Metadata: d.Metadata, State: d.State, Reason: orNull(d.Reason),
		ContentType: d.ContentType, Size: d.Size, CreatedAt: d.CreatedAt.UTC(), UpdatedAt: d.UpdatedAt.UTC(),
	}
	if j.Metadata == nil {
		j.Metadata = json.RawMessage("null")
	}
	return j
}

// dataStorageJSON is Barong's DataStorage: data is the JSON object as a string, as Barong has it.
type dataStorageJSON struct {
	Title     string    `json:"title"`
	Data      string    `json:"data"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

func dataStorageJSONOf(d projections.DataRecord) dataStorageJSON {
	return dataStorageJSON{Title: d.Title, Data: string(d.Data), CreatedAt: d.CreatedAt.UTC(), UpdatedAt: d.CreatedAt.UTC()}
}

func (a *accountRoutes) registerKYC(r, res *mux.Router) {
	if a.KYC.Records == nil || a.KYC.Blobs == nil {
		panic("api: KYC needs Records and Blobs")
	}
	get, post, put, del := []string{http.MethodGet, http.MethodHead}, http.MethodPost, http.MethodPut, http.MethodDelete
	h := func(f http.HandlerFunc) http.Handler { return f }
	res.Handle("/phones", h(a.myPhones)).Methods(get...)
	res.Handle("/phones", h(a.addPhone)).Methods(post)
	res.Handle("/phones/send_code", h(a.sendPhoneCode)).Methods(post)
	res.Handle("/phones/verify", h(a.verifyPhone)).Methods(post)
	res.Handle("/documents", h(a.myDocuments)).Methods(get...)
	// Ignores Idempotency-Key (unkeyedRoutes): its body is larger than a kept request's.
	res.Handle("/documents", h(a.uploadDocument)).Methods(post)
	res.Handle("/documents/{id}/upload", h(a.documentFile)).Methods(get...)
	res.Handle("/data_storage", h(a.storeData)).Methods(post)
	route := func(f http.HandlerFunc, ability commands.Ability) http.Handler {
		return a.authn.Middleware(RequireAbility(ability)(f))
	}
	if a.Admin != nil {
		r.Handle("/api/v2/admin/users/documents/pending", route(a.pendingDocuments, commands.AbilityReadUsers)).Methods(get...)
	}
	r.Handle("/api/v2/admin/users/documents", route(a.reviewDocument, commands.AbilityChangeUserState)).Methods(put)
	r.Handle("/api/v2/admin/users/data_storage", route(a.deleteDataStorage, commands.AbilityChangeUserState)).Methods(del)
}

// phoneRequest reads the phone_number of a phone route, answering 400 or 422 itself.
func (a *accountRoutes) phoneRequest(w http.ResponseWriter, r *http.Request, more ...string) (params, bool) {
	p, ok := a.params(w, r)
	if !ok || !require(w, p, scopeResourcePhone, append([]string{"phone_number"}, more...)...) {
		return nil, false
	}
	return p, true
}

// phoneAnswer waits for the read models and answers with the phone of that number.
func (a *accountRoutes) phoneAnswer(w http.ResponseWriter, r *http.Request, status int, res commands.Result, raw string) {
	a.caughtUp(r.Context(), res.Position)
	number, _, _ := commands.ParsePhoneNumber(raw)
	list, err := a.KYC.Records.Phones(r.Context(), res.Account.UID)
	if err != nil {
		writeViewError(w, r, a.log, scopeResourcePhone, err)
		return
	}
	for _, p := range list {
		if p.Number == number {
			WriteJSON(w, status, phoneJSONOf(p))
			return
		}
	}
	WriteJSON(w, status, phoneJSON{Number: number}) // the read model is late; the change is stored
}

func (a *accountRoutes) addPhone(w http.ResponseWriter, r *http.Request) {
	p, ok := a.phoneRequest(w, r)
	if !ok {
		return
	}
	c, _ := CallerFrom(r.Context())
	res, err := a.App.Commands.AddPhone.Handle(r.Context(), commands.AddPhone{Meta: a.meta(r), UID: uidOf(c), PhoneNumber: p.str("phone_number")})
	if err != nil {
		a.fail(w, r, scopeResourcePhone, err)
		return
	}
	a.phoneAnswer(w, r, http.StatusCreated, res, p.str("phone_number"))
}

func (a *accountRoutes) sendPhoneCode(w http.ResponseWriter, r *http.Request) {
	p, ok := a.phoneRequest(w, r)
	if !ok {
		return
	}
	c, _ := CallerFrom(r.Context())
	res, err := a.App.Commands.SendPhoneCode.Handle(r.Context(), commands.SendPhoneCode{Meta: a.meta(r), UID: uidOf(c), PhoneNumber: p.str("phone_number")})
	if err != nil {
		a.fail(w, r, scopeResourcePhone, err)
		return
	}
	a.phoneAnswer(w, r, http.StatusCreated, res, p.str("phone_number"))
}

func (a *accountRoutes) verifyPhone(w http.ResponseWriter, r *http.Request) {
	p, ok := a.phoneRequest(w, r, "verification_code")
	if !ok {
		return
	}
	c, _ := CallerFrom(r.Context())
	res, err := a.App.Commands.VerifyPhone.Handle(r.Context(), commands.VerifyPhone{
		Meta: a.meta(r), UID: uidOf(c), PhoneNumber: p.str("phone_number"), Code: p.str("verification_code"),
	})
	if err != nil {
		a.fail(w, r, scopeResourcePhone, err)
		return
	}
	a.phoneAnswer(w, r, http.StatusCreated, res, p.str("phone_number"))
}

func (a *accountRoutes) myPhones(w http.ResponseWriter, r *http.Request) {
	c, _ := CallerFrom(r.Context())
	list, err := a.phonesOf(r.Context(), c.UID)
	if err != nil {
		writeViewError(w, r, a.log, scopeResourcePhone, err)
		return
	}
	WriteJSON(w, http.StatusOK, list)
}

func (a *accountRoutes) phonesOf(ctx context.Context, uid string) ([]phoneJSON, error) {
	list, err := a.KYC.Records.Phones(ctx, uid)
	if err != nil {
		return nil, err
	}
	out := make([]phoneJSON, len(list))
	for i, p := range list {
		out[i] = phoneJSONOf(p)
	}
	return out, nil
}

func (a *accountRoutes) documentsOf(ctx context.Context, uid string) ([]documentJSON, error) {
	list, err := a.KYC.Records.Documents(ctx, uid)
	if err != nil {
		return nil, err
	}
	out := make([]documentJSON, len(list))
	for i, d := range list {
		out[i] = documentJSONOf(d)
	}
	return out, nil
}

func (a *accountRoutes) dataStorageOf(ctx context.Context, uid string) ([]dataStorageJSON, error) {
	list, err := a.KYC.Records.DataStorage(ctx, uid)
	if err != nil {
		return nil, err
	}
	out := make([]dataStorageJSON, len(list))
	for i, d := range list {
		out[i] = dataStorageJSONOf(d)
	}
	return out, nil
}

func (a *accountRoutes) myDocuments(w http.ResponseWriter, r *http.Request) {
	c, _ := CallerFrom(r.Context())
	list, err := a.documentsOf(r.Context(), c.UID)
	if err != nil {
		writeViewError(w, r, a.log, scopeResourceDocument, err)
		return
	}
	WriteJSON(w, http.StatusOK, list)
}

// documentTypes are the files a document may be, as http.DetectContentType names them from the
// first bytes (the WHATWG sniffing algorithm): never as the client names them.
var documentTypes = map[string]bool{"image/jpeg": true, "image/png": true, "application/pdf": true}

// uploadDocument reads a multipart form (doc_type, doc_number, doc_expire, metadata and the file
// in upload), checks the file by its content, puts it in the blob store and records the document.
// A file that is not a JPEG, PNG or PDF by its bytes, or that claims another of those types than
// its bytes show, is 422 resource.document.invalid_upload; a larger one than the limit 413.
func (a *accountRoutes) uploadDocument(w http.ResponseWriter, r *http.Request) {
	limit := a.KYC.MaxDocumentBytes
	if limit <= 0 {
		limit = DefaultMaxDocumentBytes
	}
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "multipart/form-data" {
		WriteError(w, http.StatusUnprocessableEntity, scopeResourceDocument+".missing_upload")
		return
	}
	// The form's fields are small; the file is the limit. Parts beyond memory go to temporary
	// files that RemoveAll deletes.
	r.Body = http.MaxBytesReader(w, r.Body, limit+maxBodyBytes)
	if err := r.ParseMultipartForm(maxBodyBytes); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			WriteError(w, http.StatusRequestEntityTooLarge, "request.body_too_large")
			return
		}
		WriteError(w, http.StatusBadRequest, "request.malformed_body")
		return
	}
	defer r.MultipartForm.RemoveAll()
	p, err := formParams(r.MultipartForm.Value)
	if err != nil {
		WriteError(w, http.StatusUnprocessableEntity, "request.invalid_utf8")
		return
	}
	if !require(w, p, scopeResourceDocument, "doc_type", "doc_number") {
		return
	}
	files := r.MultipartForm.File["upload"]
	if len(files) == 0 {
		files = r.MultipartForm.File["upload[]"]
	}
	if len(files) != 1 {
		WriteError(w, http.StatusUnprocessableEntity, scopeResourceDocument+".missing_upload")
		return
	}
	fh := files[0]
	if fh.Size > limit {
		WriteError(w, http.StatusRequestEntityTooLarge, "request.body_too_large")
		return
	}
	f, err := fh.Open()
	if err != nil {
		WriteError(w, http.StatusBadRequest, "request.malformed_body")
		return
	}
	content, err := io.ReadAll(io.LimitReader(f, limit+1))
	f.Close()
	if err != nil || int64(len(content)) > limit {
		WriteError(w, http.StatusRequestEntityTooLarge, "request.body_too_large")
		return
	}
	sniffed, _, _ := mime.ParseMediaType(http.DetectContentType(content))
	claimed, _, _ := mime.ParseMediaType(fh.Header.Get("Content-Type"))
	if !documentTypes[sniffed] || documentTypes[claimed] && claimed != sniffed {
		WriteError(w, http.StatusUnprocessableEntity, scopeResourceDocument+".invalid_upload")
		return
	}
	sum := blobs.Sum(content)
	// The blob first: an event must never name a file that is not there. A command refused after
	// this leaves an unnamed blob behind, which holds nothing the log points to.
	if err := a.KYC.Blobs.Put(r.Context(), sum, bytes.NewReader(content)); err != nil {
		a.fail(w, r, scopeResourceDocument, err)
		return
	}
	c, _ := CallerFrom(r.Context())
	res, id, err := a.App.Commands.UploadDocument.Handle(r.Context(), commands.UploadDocument{
		Meta: a.meta(r), UID: uidOf(c), DocType: p.str("doc_type"), DocNumber: p.str("doc_number"), DocExpire: p.str("doc_expire"),
		Metadata: p.json("metadata"), File: domain.DocumentFile{ContentType: sniffed, Size: int64(len(content)), SHA256: sum},
	})
	if err != nil {
		a.fail(w, r, scopeResourceDocument, err)
		return
	}
	a.caughtUp(r.Context(), res.Position)
	d, err := a.KYC.Records.Document(r.Context(), id)
	if err != nil {
		if !errors.Is(err, projections.ErrNotFound) {
			writeViewError(w, r, a.log, scopeResourceDocument, err)
			return
		}
		// The read model is late: the document is stored all the same.
		d = projections.UserDocument{ID: id, UID: c.UID, DocType: p.str("doc_type"), DocNumber: p.str("doc_number"),
			ContentType: sniffed, Size: int64(len(content)), State: string(domain.DocumentPending)}
	}
	WriteJSON(w, http.StatusCreated, documentJSONOf(d))
}

// documentFile serves a document's file to its owner and to the roles that read users: 403 for
// anyone else, 404 for an id that names no document. The bytes are checked against the SHA-256
// the log holds before they are sent.
func (a *accountRoutes) documentFile(w http.ResponseWriter, r *http.Request) {
	c, _ := CallerFrom(r.Context())
	d, err := a.KYC.Records.Document(r.Context(), mux.Vars(r)["id"])
	if errors.Is(err, projections.ErrNotFound) {
		WriteError(w, http.StatusNotFound, scopeResourceDocument+".doesnt_exist")
		return
	}
	if err != nil {
		writeViewError(w, r, a.log, scopeResourceDocument, err)
		return
	}
	if d.UID != c.UID && !commands.Permits(c.Role, commands.AbilityReadUsers) {
		WriteError(w, http.StatusForbidden, scopeResourceDocument+".forbidden")
		return
	}
	f, err := a.KYC.Blobs.Open(r.Context(), d.SHA256)
	if err != nil {
		a.fail(w, r, scopeResourceDocument, err)
		return
	}
	content, err := io.ReadAll(f)
	f.Close()
	if err == nil && blobs.Sum(content) != d.SHA256 {
		err = blobs.ErrHashMismatch
	}
	if err != nil {
		a.fail(w, r, scopeResourceDocument, err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", d.ContentType)
	h.Set("Content-Length", strconv.Itoa(len(content)))
	h.Set("Content-Disposition", `attachment; filename="`+d.ID+documentExtension(d.ContentType)+`"`)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "private, no-store")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(content)
	}
}

func documentExtension(ct string) string {
	switch ct {
	case "image/jpeg":
		return ".jpg"
	case "image/png":
		return ".png"
	}
	return ".pdf"
}

func (a *accountRoutes) storeData(w http.ResponseWriter, r *http.Request) {
	p, ok := a.params(w, r)
	if !ok || !require(w, p, scopeResourceDataStorage, "title") {
		return
	}
	if len(p.json("data")) == 0 { // an object is not text: require would not see it
		WriteError(w, http.StatusUnprocessableEntity, scopeResourceDataStorage+".missing_data")
		return
	}
	c, _ := CallerFrom(r.Context())
	title := strings.TrimSpace(p.str("title"))
	res, err := a.App.Commands.StoreData.Handle(r.Context(), commands.StoreData{Meta: a.meta(r), UID: uidOf(c), Title: title, Data: p.json("data")})
	if err != nil {
		a.fail(w, r, scopeResourceDataStorage, err)
		return
	}
	a.caughtUp(r.Context(), res.Position)
	list, err := a.KYC.Records.DataStorage(r.Context(), c.UID)
	if err != nil {
		writeViewError(w, r, a.log, scopeResourceDataStorage, err)
		return
	}
	for _, d := range list {
		if d.Title == title {
			WriteJSON(w, http.StatusCreated, dataStorageJSONOf(d))
			return
		}
	}
	WriteJSON(w, http.StatusCreated, dataStorageJSON{Title: title, Data: string(p.json("data"))})
}

// adminUID reads the uid of an admin KYC route, answering 422 itself when it is missing or
// malformed.
func adminUID(w http.ResponseWriter, p params, scope string, more ...string) (domain.UserID, bool) {
	if !require(w, p, scope, append([]string{"uid"}, more...)...) {
		return "", false
	}
	uid, err := domain.ParseUserID(p.str("uid"))
	if err != nil {
		WriteError(w, http.StatusUnprocessableEntity, scope+".invalid_uid")
		return "", false
	}
	return uid, true
}

func (a *accountRoutes) deleteDataStorage(w http.ResponseWriter, r *http.Request) {
	p, ok := a.params(w, r)
	if !ok {
		return
	}
	uid, ok := adminUID(w, p, scopeAdminDataStorage, "title")
	if !ok {
		return
	}
	res, err := a.App.Commands.DeleteDataStorage.Handle(r.Context(), commands.DeleteDataStorage{Meta: a.meta(r), UID: uid, Title: p.str("title")})
	if err != nil {
		a.fail(w, r, scopeAdminDataStorage, err)
		return
	}
	a.caughtUp(r.Context(), res.Position)
	w.WriteHeader(http.StatusNoContent)
}

// reviewDocument is PUT /admin/users/documents {uid, id, state: verified|rejected, reason}.
func (a *accountRoutes) reviewDocument(w http.ResponseWriter, r *http.Request) {
	p, ok := a.params(w, r)
	if !ok {
		return
	}
	uid, ok := adminUID(w, p, scopeAdminDocument, "id", "state")
	if !ok {
		return
	}
	state, err := domain.ParseDocumentReview(p.str("state"))
	if err != nil {
		a.fail(w, r, scopeAdminDocument, err)
		return
	}
	id := p.str("id")
	res, err := a.App.Commands.ReviewDocument.Handle(r.Context(), commands.ReviewDocument{
		Meta: a.meta(r), UID: uid, DocumentID: id, State: state, Reason: p.str("reason"),
	})
	if err != nil {
		a.fail(w, r, scopeAdminDocument, err)
		return
	}
	a.caughtUp(r.Context(), res.Position)
	d, err := a.KYC.Records.Document(r.Context(), id)
	if err != nil {
		writeViewError(w, r, a.log, scopeAdminDocument, err)
		return
	}
	WriteJSON(w, http.StatusOK, documentJSONOf(d))
}

// kycUserJSON is Barong's UserWithKYC: the admin view of a user with their profiles, labels,
// phones, documents and data storage.
type kycUserJSON struct {
	adminUserJSON
	Profiles     []profileJSON     `json:"profiles"`
	Phones       []phoneJSON       `json:"phones"`
	Documents    []documentJSON    `json:"documents"`
	DataStorages []dataStorageJSON `json:"data_storages"`
}

// kycOf fills the KYC parts of a user's admin view.
func (a *accountRoutes) kycOf(ctx context.Context, uid string) (phones []phoneJSON, docs []documentJSON, data []dataStorageJSON, err error) {
	if phones, err = a.phonesOf(ctx, uid); err != nil {
		return
	}
	if docs, err = a.documentsOf(ctx, uid); err != nil {
		return
	}
	data, err = a.dataStorageOf(ctx, uid)
	return
}

// pendingDocuments is Barong's GET /admin/users/documents/pending: the users with documents
// waiting for review, the longest waiting first, each as UserWithKYC.
func (a *accountRoutes) pendingDocuments(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var f projections.PendingFilter
	var bad []string
	if f.Page, f.Limit, bad = readPage(q.Get("page"), q.Get("limit"), scopeAdminDocument); bad != nil {
		WriteError(w, http.StatusUnprocessableEntity, bad...)
		return
	}
	ctx := r.Context()
	uids, total, err := a.KYC.Records.UsersWithPendingDocuments(ctx, f)
	if err != nil {
		writeViewError(w, r, a.log, scopeAdminDocument, err)
		return
	}
	out := make([]kycUserJSON, 0, len(uids))
	for _, uid := range uids {
		u, err := a.Admin.Users.ByUID(ctx, uid)
		if errors.Is(err, projections.ErrNotFound) {
			continue // closed meanwhile
		}
		if err != nil {
			writeViewError(w, r, a.log, scopeAdminDocument, err)
			return
		}
		j := kycUserJSON{adminUserJSON: adminUserJSONOf(u), Profiles: []profileJSON{}}
		if err := a.extend(ctx, &j.adminUserJSON, u); err != nil {
			writeViewError(w, r, a.log, scopeAdminDocument, err)
			return
		}
		if a.UserProfiles != nil {
			if j.Profiles, err = a.profilesOf(ctx, uid); err != nil {
				writeViewError(w, r, a.log, scopeAdminDocument, err)
				return
			}
		}
		if j.Phones, j.Documents, j.DataStorages, err = a.kycOf(ctx, uid); err != nil {
			writeViewError(w, r, a.log, scopeAdminDocument, err)
			return
		}
		out = append(out, j)
	}
	setPageHeaders(w, total, f.Page, f.Limit)
	WriteJSON(w, http.StatusOK, out)
}
