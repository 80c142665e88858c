package api

import (
	"encoding/json"
	"net/http"
)

// errorBody is Barong's error layout: {"errors":["resource.user.invalid_password"]}.
type errorBody struct {
	Errors []string `json:"errors"`
}

// WriteError answers with status and Barong-style error codes.
func WriteError(w http.ResponseWriter, status int, codes ...string) {
	if codes == nil {
		codes = []string{} // an empty list, not null
	}
	WriteJSON(w, status, errorBody{Errors: codes})
}

// WriteJSON answers with status and v encoded as JSON.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Only a programming mistake (an unencodable type) gets here.
		status, b = http.StatusInternalServerError, []byte(`{"errors":["server.internal_error"]}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
