package awstest

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// Authorize evaluates identity policies the way IAM does for one request by a
// principal with no permissions boundary, session policy or SCP: an explicit
// Deny in any matching statement wins, else a matching Allow permits, else the
// request is implicitly denied. It models Effect, Action/NotAction and
// Resource/NotResource (a string or a list; "*" and "?" wildcards; actions
// compared case-insensitively, resources case-sensitively). A statement that
// would match but carries a Condition is refused with an error: the request
// context needed to evaluate it is not modelled, and guessing could turn a
// denial into a grant. Policy variables (${aws:username}) are not expanded.
//
// It exists for the actions moto cannot authorise against their real IAM
// action and resource (see docs/emulators.md, "lambda:InvokeFunction").
func Authorize(pols []Policy, action, resource string) (bool, error) {
	allowed := false
	for _, p := range pols {
		var doc struct {
			Statement json.RawMessage
		}
		if err := json.Unmarshal([]byte(p.Document), &doc); err != nil {
			return false, fmt.Errorf("awstest: policy %s is not JSON: %w", p.Name, err)
		}
		var stmts []map[string]any
		if err := json.Unmarshal(doc.Statement, &stmts); err != nil {
			var one map[string]any
			if err2 := json.Unmarshal(doc.Statement, &one); err2 != nil {
				return false, fmt.Errorf("awstest: policy %s: Statement is neither an object nor a list: %w", p.Name, err)
			}
			stmts = []map[string]any{one}
		}
		for i, st := range stmts {
			match, err := stmtMatches(st, action, resource)
			if err != nil {
				return false, fmt.Errorf("awstest: policy %s statement %d: %w", p.Name, i, err)
			}
			if !match {
				continue
			}
			if _, ok := st["Condition"]; ok {
				return false, fmt.Errorf("awstest: policy %s statement %d matches %s on %s but has a Condition, which Authorize does not evaluate", p.Name, i, action, resource)
			}
			switch st["Effect"] {
			case "Deny":
				return false, nil
			case "Allow":
				allowed = true
			default:
				return false, fmt.Errorf("awstest: policy %s statement %d: Effect %v is neither Allow nor Deny", p.Name, i, st["Effect"])
			}
		}
	}
	return allowed, nil
}

func stmtMatches(st map[string]any, action, resource string) (bool, error) {
	a, err := field(st, "Action", "NotAction", action, true)
	if err != nil || !a {
		return false, err
	}
	return field(st, "Resource", "NotResource", resource, false)
}

// field matches v against st[key] (or, negated, st[notKey]); exactly one must be set.
func field(st map[string]any, key, notKey, v string, fold bool) (bool, error) {
	pos, hasPos := st[key]
	neg, hasNeg := st[notKey]
	if hasPos == hasNeg {
		return false, fmt.Errorf("want exactly one of %s and %s", key, notKey)
	}
	pats, negate := pos, false
	if hasNeg {
		pats, negate = neg, true
	}
	list, err := strList(pats)
	if err != nil {
		return false, fmt.Errorf("%s: %w", key, err)
	}
	for _, p := range list {
		if fold {
			p, v = strings.ToLower(p), strings.ToLower(v)
		}
		if Wildcard(p, v) {
			return !negate, nil
		}
	}
	return negate, nil
}

func strList(v any) ([]string, error) {
	switch x := v.(type) {
	case string:
		return []string{x}, nil
	case []any:
		out := make([]string, 0, len(x))
		for _, e := range x {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("element %v is not a string", e)
			}
			out = append(out, s)
		}
		return out, nil
	}
	return nil, errors.New("neither a string nor a list of strings")
}

// Wildcard reports whether s matches the IAM pattern p: "*" matches any run of
// characters (":" and "/" included), "?" any one character.
func Wildcard(p, s string) bool {
	// Iterative glob with backtracking to the last "*".
	pi, si, star, mark := 0, 0, -1, 0
	for si < len(s) {
		switch {
		case pi < len(p) && (p[pi] == '?' || p[pi] == s[si]):
			pi++
			si++
		case pi < len(p) && p[pi] == '*':
			star, mark = pi, si
			pi++
		case star >= 0:
			pi, mark = star+1, mark+1
			si = mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}

// MayInvoke is Authorize for lambda:InvokeFunction on resource, failing t on
// a policy it cannot evaluate.
func MayInvoke(t testing.TB, pols []Policy, resource string) bool {
	t.Helper()
	ok, err := Authorize(pols, "lambda:InvokeFunction", resource)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}
