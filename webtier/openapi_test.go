package webtier_test

import (
	"encoding/json"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/facefleet/facefleet/webtier"
)

func fetchOpenAPI(t *testing.T, e *env) map[string]any {
	t.Helper()
	code, body, h := e.call("GET", "/v1/openapi.json", "-", "", nil, nil)
	if code != 200 || !strings.HasPrefix(h.Get("Content-Type"), "application/json") {
		t.Fatalf("openapi.json: %d %s", code, h.Get("Content-Type"))
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatal(err)
	}
	return doc
}

var fiberParam = regexp.MustCompile(`:([A-Za-z_]+)`)

// Every route Fiber serves is in the document, and every operation in the
// document is served.
func TestOpenAPIMatchesServedRoutes(t *testing.T) {
	e := newEnv(t, webtier.Limits{})
	doc := fetchOpenAPI(t, e)
	served := map[string]bool{}
	for _, r := range e.s.App().GetRoutes(true) {
		if r.Method == "HEAD" { // Fiber adds HEAD to every GET
			continue
		}
		served[r.Method+" "+fiberParam.ReplaceAllString(r.Path, "{$1}")] = true
	}
	documented := map[string]bool{}
	for p, ops := range doc["paths"].(map[string]any) {
		for m := range ops.(map[string]any) {
			documented[strings.ToUpper(m)+" "+p] = true
		}
	}
	var missing, extra []string
	for r := range served {
		if !documented[r] {
			missing = append(missing, r)
		}
	}
	for r := range documented {
		if !served[r] {
			extra = append(extra, r)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	if len(missing) > 0 || len(extra) > 0 || len(served) < 15 {
		t.Fatalf("served but not documented: %v; documented but not served: %v (%d served)", missing, extra, len(served))
	}
}

// The document is well-formed OpenAPI 3.1 as far as this service uses it:
// unique operation ids, every path parameter declared, every $ref resolving,
// every security scheme defined, every operation answering something.
func TestOpenAPIDocumentIsConsistent(t *testing.T) {
	e := newEnv(t, webtier.Limits{})
	doc := fetchOpenAPI(t, e)
	if doc["openapi"] != "3.1.0" {
		t.Fatalf("openapi %v", doc["openapi"])
	}
	comps := doc["components"].(map[string]any)
	schemas := comps["schemas"].(map[string]any)
	schemes := comps["securitySchemes"].(map[string]any)
	ids := map[string]bool{}
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if r, ok := x["$ref"].(string); ok {
				name, found := strings.CutPrefix(r, "#/components/schemas/")
				if !found || schemas[name] == nil {
					t.Errorf("unresolved $ref %q", r)
				}
			}
			for _, c := range x {
				walk(c)
			}
		case []any:
			for _, c := range x {
				walk(c)
			}
		}
	}
	walk(doc)
	for p, ops := range doc["paths"].(map[string]any) {
		want := map[string]bool{}
		for _, m := range regexp.MustCompile(`\{([^}]+)\}`).FindAllStringSubmatch(p, -1) {
			want[m[1]] = true
		}
		for m, o := range ops.(map[string]any) {
			op := o.(map[string]any)
			id, _ := op["operationId"].(string)
			if id == "" || ids[id] {
				t.Errorf("%s %s: operationId %q missing or repeated", m, p, id)
			}
			ids[id] = true
			got := map[string]bool{}
			params, _ := op["parameters"].([]any)
			for _, pa := range params {
				pm := pa.(map[string]any)
				if pm["in"] == "path" {
					got[pm["name"].(string)] = true
					if pm["required"] != true {
						t.Errorf("%s %s: path parameter %v not required", m, p, pm["name"])
					}
				}
			}
			if len(got) != len(want) {
				t.Errorf("%s %s: path parameters %v, template has %v", m, p, got, want)
			}
			for k := range want {
				if !got[k] {
					t.Errorf("%s %s: {%s} not declared", m, p, k)
				}
			}
			if resps, _ := op["responses"].(map[string]any); len(resps) == 0 {
				t.Errorf("%s %s: no responses", m, p)
			}
			sec, _ := op["security"].([]any)
			if len(sec) == 0 {
				t.Errorf("%s %s: no security requirement (use {} for open)", m, p)
			}
			for _, req := range sec {
				for name := range req.(map[string]any) {
					if schemes[name] == nil {
						t.Errorf("%s %s: security scheme %q undefined", m, p, name)
					}
				}
			}
		}
	}
}

// The document says which routes need a key, following the settings.
func TestOpenAPISecurityFollowsSettings(t *testing.T) {
	optional := func(doc map[string]any, path, method string) bool {
		op := doc["paths"].(map[string]any)[path].(map[string]any)[method].(map[string]any)
		for _, r := range op["security"].([]any) {
			if len(r.(map[string]any)) == 0 {
				return true
			}
		}
		return false
	}
	open := fetchOpenAPI(t, newEnv(t, webtier.Limits{}))
	locked := fetchOpenAPI(t, newEnvAuth(t, webtier.Limits{}, webtier.AuthOptions{RecognizeNeedsKey: true}))
	if !optional(open, "/v1/recognize", "post") || optional(locked, "/v1/recognize", "post") || !optional(locked, "/", "post") {
		t.Fatal("recognize's security does not follow -recognize-needs-key")
	}
	if optional(open, "/v1/subjects/{name}/faces", "put") || optional(open, "/v1/gallery", "put") || !optional(open, "/healthz", "get") {
		t.Fatal("admin routes documented as open, or open ones as locked")
	}
}
