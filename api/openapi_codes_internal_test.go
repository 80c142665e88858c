package api

import (
	"strings"
	"testing"
)

// Every code of the error map (errors_map.go) is in the OpenAPI document, so a client generated
// from it, or a person reading it, knows every code the server may answer.
func TestOpenAPIListsEveryMappedErrorCode(t *testing.T) {
	t.Parallel()
	doc := string(openAPIYAML)
	codes := []string{"route.not_found", "route.method_not_allowed", "authz.missing_token", "jwt.decode_and_verify", "server.internal_error"}
	for _, r := range errorRules {
		if strings.HasPrefix(r.code, ".") {
			codes = append(codes, "<scope>"+r.code)
		} else {
			codes = append(codes, r.code)
		}
	}
	for _, code := range codes {
		if !strings.Contains(doc, "`"+code+"`") {
			t.Errorf("api/openapi.yaml does not list the error code `%s`", code)
		}
	}
}
