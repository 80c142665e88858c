package api

import (
	"bytes"
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
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		panic(fmt.Sprintf("api: openapi.yaml: %v", err))
	}
	var out bytes.Buffer
	if err := writeJSON(&out, &doc); err != nil {
		panic(fmt.Sprintf("api: openapi.yaml: %v", err))
	}
	return out.Bytes()
}

// writeJSON writes a YAML node as JSON, keeping the document's order of keys (a map would sort
// them), so the served document reads like the file and generates the same client.
func writeJSON(out *bytes.Buffer, n *yaml.Node) error {
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) != 1 {
			return fmt.Errorf("line %d: want one document", n.Line)
		}
		return writeJSON(out, n.Content[0])
	case yaml.AliasNode:
		return writeJSON(out, n.Alias)
	case yaml.MappingNode:
		out.WriteByte('{')
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Kind != yaml.ScalarNode || k.Tag != "!!str" {
				// YAML reads `200:` as a number; JSON keys are text.
				return fmt.Errorf("line %d: key %q is not a string (quote it)", k.Line, k.Value)
			}
			if i > 0 {
				out.WriteByte(',')
			}
			key, _ := json.Marshal(k.Value)
			out.Write(key)
			out.WriteByte(':')
			if err := writeJSON(out, v); err != nil {
				return err
			}
		}
		out.WriteByte('}')
	case yaml.SequenceNode:
		out.WriteByte('[')
		for i, e := range n.Content {
			if i > 0 {
				out.WriteByte(',')
			}
			if err := writeJSON(out, e); err != nil {
				return err
			}
		}
		out.WriteByte(']')
	case yaml.ScalarNode:
		var v any
		if err := n.Decode(&v); err != nil {
			return fmt.Errorf("line %d: %w", n.Line, err)
		}
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("line %d: %w", n.Line, err)
		}
		out.Write(b)
	default:
		return fmt.Errorf("line %d: unexpected YAML node", n.Line)
	}
	return nil
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
