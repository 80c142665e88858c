package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"

	"github.com/idlog/idlog/eventstore"
)

// maxBodyBytes bounds a request body: user data is at most 16 KiB, everything else is small.
const maxBodyBytes = 64 << 10

// Errors of reading a request body; the handlers answer them with 400 and 413.
var (
	errMalformedBody = errors.New("api: malformed request body")
	errBodyTooLarge  = errors.New("api: request body too large")
	// errInvalidText: a field is not valid UTF-8 or holds NUL, which the event log refuses.
	errInvalidText = errors.New("api: request text is not valid UTF-8 or holds NUL")
)

// params are the fields of a request body, JSON or form: Barong's clients send both.
type params map[string]json.RawMessage

// readParams decodes a JSON object or a URL-encoded or multipart form. An empty body is no fields.
// Text that is not valid UTF-8 or holds NUL is errInvalidText: the log could not keep it.
//
// A DELETE is read like any other request, as Barong's clients send it: its form body is decoded
// (net/http reads form bodies of POST, PUT and PATCH only), and its query string gives the fields
// the body does not (DELETE /resource/users/me?password=...). The query of other methods is not
// read: their fields, secrets among them, belong in the body.
func readParams(r *http.Request) (params, error) {
	p, err := readBodyParams(r)
	if err != nil || r.Method != http.MethodDelete {
		return p, err
	}
	for k, vs := range r.URL.Query() {
		if _, ok := p[k]; ok || len(vs) == 0 {
			continue
		}
		if eventstore.CheckText(k) != nil || eventstore.CheckText(vs[0]) != nil {
			return nil, errInvalidText
		}
		p[k], _ = json.Marshal(vs[0])
	}
	return p, nil
}

func readBodyParams(r *http.Request) (params, error) {
	body, err := readBody(r)
	if err != nil {
		return nil, err
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ct == "application/x-www-form-urlencoded" && r.Method == http.MethodDelete {
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, errMalformedBody
		}
		r.PostForm = form
		return formParams(form)
	}
	switch ct {
	case "application/x-www-form-urlencoded", "multipart/form-data":
		r.Body = io.NopCloser(bytes.NewReader(body))
		if ct == "multipart/form-data" {
			err = r.ParseMultipartForm(maxBodyBytes)
		} else {
			err = r.ParseForm()
		}
		if err != nil {
			return nil, errMalformedBody
		}
		return formParams(r.PostForm)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return params{}, nil
	}
	var p params
	if err := json.Unmarshal(body, &p); err != nil || p == nil {
		return nil, errMalformedBody
	}
	// encoding/json would quietly turn invalid bytes into U+FFFD in strings it decodes, but keep
	// them in raw fields (user data); both are refused instead, as are NUL escapes.
	if eventstore.CheckJSONText(body) != nil {
		return nil, errInvalidText
	}
	return p, nil
}

// formParams are a form's fields, the first value of each.
func formParams(form url.Values) (params, error) {
	p := params{}
	for k, vs := range form {
		if eventstore.CheckText(k) != nil {
			return nil, errInvalidText
		}
		for _, v := range vs {
			if eventstore.CheckText(v) != nil {
				return nil, errInvalidText
			}
		}
		if len(vs) > 0 {
			p[k], _ = json.Marshal(vs[0])
		}
	}
	return p, nil
}

// readBody reads the whole body, at most maxBodyBytes, and leaves it readable again.
func readBody(r *http.Request) ([]byte, error) {
	if r.Body == nil {
		return nil, nil
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxBodyBytes))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return nil, errBodyTooLarge
	}
	if err != nil {
		return nil, errMalformedBody
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	return body, nil
}

// str is a field as text: a JSON string unquoted, a number or boolean as written, "" if absent
// or null.
func (p params) str(name string) string {
	raw, ok := p[name]
	if !ok {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	switch t := strings.TrimSpace(string(raw)); {
	case t == "", t == "null", t[0] == '{', t[0] == '[':
		return ""
	default:
		return t
	}
}

// present reports whether the field was given, even empty.
func (p params) present(name string) bool {
	_, ok := p[name]
	return ok
}

// json is a field holding free JSON. Barong sends user data as a string of JSON: a string whose
// text is a JSON object or array is taken as that JSON, an empty string as no data, anything else
// as given. The domain checks the result like any other data.
func (p params) json(name string) json.RawMessage {
	raw, ok := p[name]
	if !ok {
		return nil
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return raw
	}
	switch t := strings.TrimSpace(s); {
	case t == "":
		return nil
	case t[0] == '{' || t[0] == '[':
		return json.RawMessage(t)
	default:
		return raw
	}
}
