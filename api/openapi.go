package api

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/gorilla/mux"
	"gopkg.in/yaml.v3"
)

// The OpenAPI document is written by hand in openapi.yaml, beside the handlers it describes, and
// held to them by the tests (openapi_test.go): the router and the document list the same routes
// and methods, and the answers of the HTTP tests validate against it. It is served as JSON.

//go:embed openapi.yaml
var openAPIYAML []byte

// openAPIJSON is the document as served. A document that does not parse is a build mistake that
// every test would show, so it panics when the package loads.
var openAPIJSON = mustOpenAPIJSON(openAPIYAML)

// OpenAPI returns idlog's OpenAPI 3.1 document as JSON, as GET /api/v2/openapi.json serves it.
func OpenAPI() []byte { return slices.Clone(openAPIJSON) }

func mustOpenAPIJSON(src []byte) []byte {
	var doc any
	if err := yaml.Unmarshal(src, &doc); err != nil {
		panic(fmt.Sprintf("api: openapi.yaml: %v", err))
	}
	doc, err := jsonable(doc)
	if err != nil {
		panic(fmt.Sprintf("api: openapi.yaml: %v", err))
	}
	out, err := json.Marshal(doc)
	if err != nil {
		panic(fmt.Sprintf("api: openapi.yaml: %v", err))
	}
	return out
}

// jsonable checks that every mapping key is a string: YAML reads `200:` as a number, which JSON
// cannot have as a key, so status codes must be quoted in the document.
func jsonable(v any) (any, error) {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			e, err := jsonable(e)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			t[k] = e
		}
	case map[any]any:
		for k := range t {
			if _, ok := k.(string); !ok {
				return nil, fmt.Errorf("key %v is not a string (quote it)", k)
			}
		}
	case []any:
		for i, e := range t {
			e, err := jsonable(e)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			t[i] = e
		}
	}
	return v, nil
}

func serveOpenAPI(w http.ResponseWriter, _ *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "public, max-age=300")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(openAPIJSON)
}

// Route is a path template and method the router serves. Path is written as in the OpenAPI
// document: a variable without its regular expression ({uid}, not {uid:ID[0-9A-F]{10}}).
type Route struct {
	Method, Path string
}

// handler is what NewServer returns: the middleware chain, and the router inside for Routes.
type handler struct {
	http.Handler
	router *mux.Router
}

// Routes lists the routes of a handler made by NewServer, sorted by path then method; nil for any
// other handler.
func Routes(h http.Handler) []Route {
	s, ok := h.(*handler)
	if !ok {
		return nil
	}
	var out []Route
	_ = s.router.Walk(func(route *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		if route.GetHandler() == nil {
			return nil // a subrouter's prefix: its own routes are walked too
		}
		tpl, err := route.GetPathTemplate()
		if err != nil {
			return nil
		}
		methods, err := route.GetMethods()
		if err != nil {
			methods = []string{""} // any method: the contract test reports it
		}
		for _, m := range methods {
			out = append(out, Route{Method: m, Path: plainTemplate(tpl)})
		}
		return nil
	})
	slices.SortFunc(out, func(a, b Route) int {
		if c := strings.Compare(a.Path, b.Path); c != 0 {
			return c
		}
		return strings.Compare(a.Method, b.Method)
	})
	return out
}

// plainTemplate drops the regular expressions of a gorilla/mux template's variables, which may
// hold braces themselves: /users/{uid:ID[0-9A-F]{10}} is /users/{uid}.
func plainTemplate(tpl string) string {
	var b strings.Builder
	depth, skipping := 0, false
	for _, c := range tpl {
		switch {
		case c == '{':
			depth++
			if depth == 1 {
				b.WriteRune(c)
				continue
			}
		case c == '}':
			depth--
			if depth == 0 {
				skipping = false
				b.WriteRune(c)
				continue
			}
		case c == ':' && depth == 1:
			skipping = true
		}
		if !skipping {
			b.WriteRune(c)
		}
	}
	return b.String()
}
