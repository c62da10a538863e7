package awstest_test

import (
	"strings"
	"testing"

	"github.com/facefleet/facefleet/internal/awstest"
)

func TestWildcard(t *testing.T) {
	for _, c := range []struct {
		p, s string
		want bool
	}{
		{"*", "", true},
		{"*", "arn:aws:lambda:us-east-1:1:function:f", true},
		{"arn:aws:lambda:*:*:function:f", "arn:aws:lambda:us-east-1:1:function:f", true},
		{"arn:aws:lambda:*:*:function:f", "arn:aws:lambda:us-east-1:1:function:f:live", false},
		{"arn:aws:lambda:*:*:function:f*", "arn:aws:lambda:us-east-1:1:function:f:live", true},
		{"a?c", "abc", true},
		{"a?c", "ac", false},
		{"a*b*c", "aXbYbZc", true},
		{"a*b*c", "aXbYbZ", false},
		{"f", "f2", false},
		{"f", "", false},
	} {
		if got := awstest.Wildcard(c.p, c.s); got != c.want {
			t.Errorf("Wildcard(%q, %q) = %v, want %v", c.p, c.s, got, c.want)
		}
	}
}

func TestAuthorize(t *testing.T) {
	const fn = "arn:aws:lambda:us-east-1:123456789012:function:s-Scaler"
	pol := func(stmts string) []awstest.Policy {
		return []awstest.Policy{{Name: "p", Document: `{"Version":"2012-10-17","Statement":` + stmts + `}`}}
	}
	allow := `{"Effect":"Allow","Action":"lambda:InvokeFunction","Resource":"` + fn + `"}`
	for _, c := range []struct {
		name, stmts, action, resource string
		want                          bool
		err                           string
	}{
		{"exact", "[" + allow + "]", "lambda:InvokeFunction", fn, true, ""},
		{"single statement object", allow, "lambda:InvokeFunction", fn, true, ""},
		{"action case-insensitive", "[" + allow + "]", "Lambda:invokefunction", fn, true, ""},
		{"other function", "[" + allow + "]", "lambda:InvokeFunction", fn + "2", false, ""},
		{"qualified", "[" + allow + "]", "lambda:InvokeFunction", fn + ":live", false, ""},
		{"other action", "[" + allow + "]", "lambda:InvokeAsync", fn, false, ""},
		{"resource case-sensitive", "[" + allow + "]", "lambda:InvokeFunction", strings.ToUpper(fn), false, ""},
		{"no statement: implicit deny", "[]", "lambda:InvokeFunction", fn, false, ""},
		{"deny wins", "[" + allow + `,{"Effect":"Deny","Action":"lambda:*","Resource":"*"}]`, "lambda:InvokeFunction", fn, false, ""},
		{"action list and wildcard", `[{"Effect":"Allow","Action":["s3:GetObject","lambda:Invoke*"],"Resource":["x",` + `"arn:aws:lambda:*:*:function:s-*"]}]`, "lambda:InvokeFunction", fn, true, ""},
		{"NotAction", `[{"Effect":"Allow","NotAction":"s3:*","Resource":"*"}]`, "lambda:InvokeFunction", fn, true, ""},
		{"NotAction excludes", `[{"Effect":"Allow","NotAction":"lambda:*","Resource":"*"}]`, "lambda:InvokeFunction", fn, false, ""},
		{"NotResource", `[{"Effect":"Allow","Action":"*","NotResource":"` + fn + `"}]`, "lambda:InvokeFunction", fn, false, ""},
		{"condition refused", `[{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"true"}}}]`, "lambda:InvokeFunction", fn, false, "Condition"},
		{"condition on a statement that does not match is fine", "[" + allow + `,{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"true"}}}]`, "lambda:InvokeFunction", fn, true, ""},
		{"both Action and NotAction", `[{"Effect":"Allow","Action":"*","NotAction":"s3:*","Resource":"*"}]`, "lambda:InvokeFunction", fn, false, "exactly one"},
		{"bad effect", `[{"Effect":"allow","Action":"*","Resource":"*"}]`, "lambda:InvokeFunction", fn, false, "Effect"},
	} {
		got, err := awstest.Authorize(pol(c.stmts), c.action, c.resource)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: err %v, want one mentioning %q", c.name, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%s: Authorize = %v, %v; want %v", c.name, got, err, c.want)
		}
	}
}
