package api_test

import (
	"bytes"
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3filter"

	"github.com/idlog/idlog/commands"
	"github.com/idlog/idlog/domain"
)

func init() {
	// Document files validate as binary strings.
	for _, ct := range []string{"image/png", "image/jpeg", "application/pdf"} {
		openapi3filter.RegisterBodyDecoder(ct, openapi3filter.FileBodyDecoder)
	}
}

type phoneOut struct {
	Country     string  `json:"country"`
	Number      string  `json:"number"`
	ValidatedAt *string `json:"validated_at"`
}

type documentOut struct {
	ID, Upload, State string
	ContentType       string  `json:"content_type"`
	DocType           string  `json:"doc_type"`
	DocNumber         string  `json:"doc_number"`
	Reason            *string `json:"reason"`
	Size              int64
}

// pngBytes is a real PNG image.
func pngBytes(t *testing.T) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 8, 8))
	img.Set(1, 1, color.RGBA{R: 200, A: 255})
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// upload posts a multipart document form whose file part declares contentType.
func (s *server) upload(t *testing.T, token string, fields map[string]string, name, contentType string, file []byte) response {
	t.Helper()
	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	for k, v := range fields {
		w.WriteField(k, v)
	}
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", `form-data; name="upload"; filename="`+name+`"`)
	h.Set("Content-Type", contentType)
	part, err := w.CreatePart(h)
	if err != nil {
		t.Fatal(err)
	}
	part.Write(file)
	w.Close()
	return s.do(request{method: http.MethodPost, path: "/api/v2/resource/documents", body: rawBody(body.String()), token: token,
		header: http.Header{"Content-Type": {w.FormDataContentType()}}})
}

func levelOf(t *testing.T, s *server, token string) int {
	t.Helper()
	var me struct{ Level int }
	s.get("/api/v2/resource/users/me", token).want(t, http.StatusOK).json(t, &me)
	return me.Level
}

// The journey of issue 15: a user climbs the ladder on their own, through the real router.
func TestKYCJourney(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, s *server) {
		const phones, documents = "/api/v2/resource/phones", "/api/v2/resource/documents"
		// Sign up and confirm the email: level 1.
		uid := s.signUp(t, "climber@example.com", "")
		token := s.mail.last(t, commands.NotifyEmailConfirmation, "climber@example.com")
		s.post("/api/v2/identity/users/email/confirm_code", obj{"token": token}, "").want(t, http.StatusCreated)
		tok := s.signIn(t, "climber@example.com", "")
		if l := levelOf(t, s, tok); l != 1 {
			t.Fatalf("level after email %d", l)
		}
		_, bobTok := s.member(t, "bob")
		admin, adminTok := s.staff(t, "admin", domain.RoleAdmin)

		// A phone: parsed and normalised; a bad number is 422 and appends nothing.
		before := len(s.events(t))
		s.post(phones, obj{"phone_number": "+1 555"}, tok).want(t, http.StatusUnprocessableEntity, "resource.phone.invalid_num")
		s.post(phones, obj{}, tok).want(t, http.StatusUnprocessableEntity, "resource.phone.missing_phone_number")
		if n := len(s.events(t)); n != before {
			t.Fatalf("a refused phone appended %d events", n-before)
		}
		var p phoneOut
		s.post(phones, url.Values{"phone_number": {"33 6 12 34 56 78"}}, tok).want(t, http.StatusCreated).json(t, &p)
		if p.Number != "+33612345678" || p.Country != "FR" || p.ValidatedAt != nil {
			t.Fatalf("added %+v", p)
		}
		s.post(phones, obj{"phone_number": "+33612345678"}, tok).want(t, http.StatusBadRequest, "resource.phone.number_exist")
		first := s.mail.last(t, commands.NotifyPhoneCode, "+33612345678")
		// A new code replaces the first.
		s.post(phones+"/send_code", obj{"phone_number": "+33612345678"}, tok).want(t, http.StatusCreated)
		code := s.mail.last(t, commands.NotifyPhoneCode, "+33612345678")
		if code != first {
			s.post(phones+"/verify", obj{"phone_number": "+33612345678", "verification_code": first}, tok).
				want(t, http.StatusNotFound, "resource.phone.verification_invalid")
		}

		// A wrong code is refused, counted and shown in the activity; the right one verifies: level 2.
		wrong := "000000"
		if code == wrong {
			wrong = "111111"
		}
		s.post(phones+"/verify", obj{"phone_number": "+33612345678", "verification_code": wrong}, tok).
			want(t, http.StatusNotFound, "resource.phone.verification_invalid")
		s.post(phones+"/verify", obj{"phone_number": "+33699999999", "verification_code": code}, tok).
			want(t, http.StatusNotFound, "resource.phone.doesnt_exist")
		s.post(phones+"/verify", url.Values{"phone_number": {"+33612345678"}, "verification_code": {code}}, tok).
			want(t, http.StatusCreated).json(t, &p)
		if p.ValidatedAt == nil {
			t.Fatalf("verified %+v", p)
		}
		s.post(phones+"/send_code", obj{"phone_number": "+33612345678"}, tok).want(t, http.StatusBadRequest, "resource.phone.already_verified")
		var list []phoneOut
		s.get(phones, tok).want(t, http.StatusOK).json(t, &list)
		if len(list) != 1 || list[0].ValidatedAt == nil {
			t.Fatalf("phones %+v", list)
		}
		if l := levelOf(t, s, tok); l != 2 {
			t.Fatalf("level after phone %d", l)
		}

		// A profile, submitted.
		s.post("/api/v2/resource/profiles", obj{"first_name": "Cleo", "last_name": "Climber", "country": "FR", "confirm": true}, tok).
			want(t, http.StatusCreated)

		// A document: checked by its content. Lies are 422 and append nothing.
		img := pngBytes(t)
		fields := map[string]string{"doc_type": "passport", "doc_number": "AB123456", "doc_expire": "2099-01-01"}
		before = len(s.events(t))
		s.upload(t, tok, fields, "passport.png", "image/png", []byte("just some text, not an image")).
			want(t, http.StatusUnprocessableEntity, "resource.document.invalid_upload")
		s.upload(t, tok, fields, "passport.pdf", "application/pdf", img).
			want(t, http.StatusUnprocessableEntity, "resource.document.invalid_upload")
		s.upload(t, tok, map[string]string{"doc_type": "passport"}, "p.png", "image/png", img).
			want(t, http.StatusUnprocessableEntity, "resource.document.missing_doc_number")
		s.upload(t, tok, fields, "big.png", "image/png", append(img, make([]byte, 300<<10)...)).
			want(t, http.StatusRequestEntityTooLarge, "request.body_too_large")
		if n := len(s.events(t)); n != before {
			t.Fatalf("refused uploads appended %d events", n-before)
		}
		var doc documentOut
		s.upload(t, tok, fields, "passport.png", "application/octet-stream", img).want(t, http.StatusCreated).json(t, &doc)
		if doc.State != "pending" || doc.ContentType != "image/png" || doc.DocNumber != "AB123456" || doc.Size != int64(len(img)) ||
			doc.Upload != documents+"/"+doc.ID+"/upload" {
			t.Fatalf("uploaded %+v", doc)
		}
		var docs []documentOut
		s.get(documents, tok).want(t, http.StatusOK).json(t, &docs)
		if len(docs) != 1 || docs[0].ID != doc.ID {
			t.Fatalf("documents %+v", docs)
		}

		// The file: to its owner and reviewers only, through idlog.
		r := s.get(doc.Upload, tok).want(t, http.StatusOK)
		if r.body != string(img) || r.header.Get("Content-Type") != "image/png" || r.header.Get("X-Content-Type-Options") != "nosniff" {
			t.Fatalf("file: %d bytes, %v", len(r.body), r.header)
		}
		s.get(doc.Upload, bobTok).want(t, http.StatusForbidden, "resource.document.forbidden")
		s.get(documents+"/0123456789abcdef0123456789abcdef/upload", tok).want(t, http.StatusNotFound, "resource.document.doesnt_exist")
		if r := s.get(doc.Upload, adminTok).want(t, http.StatusOK); r.body != string(img) {
			t.Fatal("the reviewer got another file")
		}
		// The log holds the file's SHA-256, never its bytes.
		for _, e := range s.events(t) {
			if bytes.Contains(e.Data, img[8:40]) {
				t.Fatalf("%s holds the file's bytes", e.Type)
			}
		}

		// The administrator finds the pending document and approves it: level 3.
		var pending []struct {
			UID       string
			Documents []documentOut
			Phones    []phoneOut
		}
		s.get("/api/v2/admin/users/documents/pending", adminTok).want(t, http.StatusOK).json(t, &pending)
		if len(pending) != 1 || pending[0].UID != uid || len(pending[0].Documents) != 1 || len(pending[0].Phones) != 1 {
			t.Fatalf("pending %+v", pending)
		}
		review := obj{"uid": uid, "id": doc.ID, "state": "verified"}
		s.put("/api/v2/admin/users/documents", review, bobTok).want(t, http.StatusForbidden, "admin.ability.not_permitted")
		s.put("/api/v2/admin/users/documents", obj{"uid": uid, "id": doc.ID, "state": "rejected"}, adminTok).
			want(t, http.StatusUnprocessableEntity, "admin.document.invalid_reason")
		s.put("/api/v2/admin/users/documents", obj{"uid": uid, "id": "nope", "state": "verified"}, adminTok).
			want(t, http.StatusNotFound, "admin.document.doesnt_exist")
		s.put("/api/v2/admin/users/documents", review, adminTok).want(t, http.StatusOK).json(t, &doc)
		if doc.State != "verified" {
			t.Fatalf("reviewed %+v", doc)
		}
		s.get("/api/v2/admin/users/documents/pending", adminTok).want(t, http.StatusOK).json(t, &pending)
		if len(pending) != 0 {
			t.Fatalf("still pending %+v", pending)
		}
		if l := levelOf(t, s, tok); l != 3 {
			t.Fatalf("level after document %d", l)
		}
		claims, err := s.signer.Verify(s.signIn(t, "climber@example.com", ""))
		if err != nil || claims.Level != 3 {
			t.Fatalf("new token level %d, %v", claims.Level, err)
		}

		// Data storage, Barong's.
		var rec struct{ Title, Data string }
		s.post("/api/v2/resource/data_storage", obj{"title": "bank", "data": `{"iban":"FR76"}`}, tok).want(t, http.StatusCreated).json(t, &rec)
		if rec.Title != "bank" || rec.Data != `{"iban":"FR76"}` {
			t.Fatalf("stored %+v", rec)
		}
		s.post("/api/v2/resource/data_storage", url.Values{"title": {"bank"}, "data": {`{"x":1}`}}, tok).
			want(t, http.StatusUnprocessableEntity, "resource.data_storage.duplicate_title")
		s.post("/api/v2/resource/data_storage", obj{"title": "tax", "data": "not json"}, tok).
			want(t, http.StatusUnprocessableEntity, "resource.data_storage.invalid_data")
		s.post("/api/v2/resource/data_storage", obj{"title": "tax", "data": obj{"id": "1"}}, tok).want(t, http.StatusCreated)

		// The administrator's view: Barong's UserWithKYC.
		var u struct {
			Level        int
			Labels       []struct{ Key, Value, Scope string }
			Profiles     []profileOut
			Phones       []phoneOut
			Documents    []documentOut
			DataStorages []struct{ Title, Data string } `json:"data_storages"`
		}
		s.get("/api/v2/admin/users/"+uid, adminTok).want(t, http.StatusOK).json(t, &u)
		if u.Level != 3 || len(u.Profiles) != 1 || len(u.Phones) != 1 || len(u.Documents) != 1 || len(u.DataStorages) != 2 || len(u.Labels) != 3 {
			t.Fatalf("admin view %+v", u)
		}

		// DELETE reads its query string: Barong's clients send parameters there.
		s.do(request{method: http.MethodDelete, path: "/api/v2/admin/users/data_storage?uid=" + uid + "&title=bank", token: adminTok}).
			want(t, http.StatusNoContent)
		s.do(request{method: http.MethodDelete, path: "/api/v2/admin/users/data_storage", body: url.Values{"uid": {uid}, "title": {"bank"}}, token: adminTok}).
			want(t, http.StatusNotFound, "admin.data_storage.doesnt_exist")

		// Every step is in the user's activity; the review in the administrator's.
		var acts []struct{ Action, Result, Topic string }
		s.get("/api/v2/resource/users/activity/all?limit=100", tok).want(t, http.StatusOK).json(t, &acts)
		var actions []string
		for _, a := range acts {
			actions = append(actions, a.Action+"/"+a.Result)
		}
		for _, want := range []string{"verify_email/succeed", "add_phone/succeed", "send_phone_code/succeed", "check/failed",
			"verify_phone/succeed", "create_profile/succeed", "upload_document/succeed", "store_data/succeed", "change_level/succeed"} {
			if !slices.Contains(actions, want) {
				t.Errorf("activity %v lacks %s", actions, want)
			}
		}
		var adminActs []struct{ Action, TargetUID string }
		s.get("/api/v2/resource/users/activity/all?limit=100", adminTok).want(t, http.StatusOK).json(t, &adminActs)
		found := false
		for _, a := range adminActs {
			found = found || a.Action == "review_document"
		}
		if !found {
			t.Errorf("the administrator's activity %+v lacks the review", adminActs)
		}
		_ = admin

		// The log: the code only as an argon2id hash; the number only in phone_number fields.
		for _, e := range s.events(t) {
			switch e.Type {
			case "PhoneCodeSent":
				var d struct {
					CodeHash string `json:"code_hash"`
				}
				json.Unmarshal(e.Data, &d)
				if !strings.HasPrefix(d.CodeHash, "$argon2id$") || strings.Contains(string(e.Data), `"`+code+`"`) {
					t.Fatalf("PhoneCodeSent %s", e.Data)
				}
			case "PhoneAdded", "PhoneVerified":
				if !strings.Contains(string(e.Data), `"phone_number":"+33612345678"`) {
					t.Fatalf("%s %s", e.Type, e.Data)
				}
			case "DocumentUploaded":
				if !strings.Contains(string(e.Data), `"doc_number":"AB123456"`) {
					t.Fatalf("%s %s", e.Type, e.Data)
				}
			}
		}
	})
}

// Barong's clients send DELETE parameters in the query string or a form body; both are read.
func TestDeleteParametersFromQueryOrForm(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, s *server) {
		uid, tok := s.member(t, "leaver")
		_, adminTok := s.staff(t, "admin", domain.RoleAdmin)
		s.post("/api/v2/admin/users/labels", obj{"uid": uid, "key": "tier", "value": "gold", "scope": "private"}, adminTok).want(t, http.StatusCreated)
		s.do(request{method: http.MethodDelete, path: "/api/v2/admin/users/labels", token: adminTok,
			body: url.Values{"uid": {uid}, "key": {"tier"}, "scope": {"private"}}}).want(t, http.StatusNoContent)
		s.do(request{method: http.MethodDelete, path: "/api/v2/resource/users/me?password=wrong", token: tok}).
			want(t, http.StatusUnprocessableEntity, "resource.user.invalid_password")
		s.do(request{method: http.MethodDelete, path: "/api/v2/resource/users/me?password=" + url.QueryEscape(password), token: tok}).
			want(t, http.StatusNoContent)

		// Barong 2.4's POST /admin/users/update.
		other, _ := s.member(t, "other")
		var out struct{ State string }
		s.post("/api/v2/admin/users/update", url.Values{"uid": {other}, "state": {"locked"}}, adminTok).want(t, http.StatusOK).json(t, &out)
		if out.State != "locked" {
			t.Fatalf("update answered %+v", out)
		}
	})
}

// A phone code is limited like any secret: after the free attempts, even the right code waits.
func TestPhoneCodeAttemptsAreLimited(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, s *server) {
		_, tok := s.member(t, "guesser")
		s.post("/api/v2/resource/phones", obj{"phone_number": "+4915112345678"}, tok).want(t, http.StatusCreated)
		code := s.mail.last(t, commands.NotifyPhoneCode, "+4915112345678")
		wrong := "000000"
		if code == wrong {
			wrong = "111111"
		}
		for range commands.DefaultOTPPolicy.Free {
			s.post("/api/v2/resource/phones/verify", obj{"phone_number": "+4915112345678", "verification_code": wrong}, tok).
				want(t, http.StatusNotFound, "resource.phone.verification_invalid")
		}
		r := s.post("/api/v2/resource/phones/verify", obj{"phone_number": "+4915112345678", "verification_code": code}, tok).
			want(t, http.StatusTooManyRequests, "resource.phone.too_many_attempts")
		if r.header.Get("Retry-After") == "" {
			t.Fatal("no Retry-After")
		}
		verified := 0
		for _, e := range s.events(t) {
			if e.Type == "PhoneVerified" {
				verified++
			}
		}
		if verified != 0 {
			t.Fatal("a throttled code verified the phone")
		}
	})
}

// A number is verified by one user at a time, as in Barong: the second to prove it, or anyone who
// adds it once it is verified, gets 400 resource.phone.number_exist; closing the first account
// frees it.
func TestPhoneVerifiedByOneUserOnly(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, s *server) {
		const number = "+442071838750"
		carol, carolTok := s.member(t, "carol")
		_, daveTok := s.member(t, "dave")
		_, erinTok := s.member(t, "erin")
		_, adminTok := s.staff(t, "admin", domain.RoleAdmin)
		s.post("/api/v2/resource/phones", obj{"phone_number": number}, carolTok).want(t, http.StatusCreated)
		carolCode := s.mail.last(t, commands.NotifyPhoneCode, number)
		s.post("/api/v2/resource/phones", obj{"phone_number": number}, daveTok).want(t, http.StatusCreated)
		daveCode := s.mail.last(t, commands.NotifyPhoneCode, number)
		s.post("/api/v2/resource/phones/verify", obj{"phone_number": number, "verification_code": carolCode}, carolTok).want(t, http.StatusCreated)
		s.post("/api/v2/resource/phones/verify", obj{"phone_number": number, "verification_code": daveCode}, daveTok).
			want(t, http.StatusBadRequest, "resource.phone.number_exist")
		s.post("/api/v2/resource/phones", obj{"phone_number": number}, erinTok).want(t, http.StatusBadRequest, "resource.phone.number_exist")
		if l := levelOf(t, s, daveTok); l != 0 {
			t.Fatalf("dave's level %d", l)
		}
		s.do(request{method: http.MethodDelete, path: "/api/v2/admin/users/" + carol, token: adminTok}).want(t, http.StatusNoContent)
		s.post("/api/v2/resource/phones", obj{"phone_number": number}, erinTok).want(t, http.StatusCreated)
		s.post("/api/v2/resource/phones/verify", obj{"phone_number": number, "verification_code": s.mail.last(t, commands.NotifyPhoneCode, number)}, erinTok).
			want(t, http.StatusCreated)
	})
}
