// Package template_test checks template.yaml: every intrinsic reference resolves,
// and the pieces the design depends on are wired as stated. cfn-lint (make
// lint-template) checks the schema; this checks our intent.
package template_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/facefleet/facefleet/internal/testenv"
)

// fn maps short-form tags to their long-form keys.
var fn = map[string]string{
	"!Ref": "Ref", "!Condition": "Condition",
	"!GetAtt": "Fn::GetAtt", "!Sub": "Fn::Sub", "!If": "Fn::If", "!Equals": "Fn::Equals",
	"!Not": "Fn::Not", "!And": "Fn::And", "!Or": "Fn::Or", "!FindInMap": "Fn::FindInMap",
	"!Base64": "Fn::Base64", "!Join": "Fn::Join", "!Select": "Fn::Select", "!Split": "Fn::Split",
	"!GetAZs": "Fn::GetAZs", "!ImportValue": "Fn::ImportValue", "!Cidr": "Fn::Cidr",
	"!Contains": "Fn::Contains", // a Rules function
}

// decode turns a yaml.v3 node into plain Go values, rewriting short-form
// intrinsics (!Ref X) into their long form ({"Ref": X}).
func decode(n *yaml.Node) (any, error) {
	if n.Kind == yaml.DocumentNode {
		return decode(n.Content[0])
	}
	if n.Kind == yaml.AliasNode {
		return decode(n.Alias)
	}
	var v any
	switch n.Kind {
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			val, err := decode(n.Content[i+1])
			if err != nil {
				return nil, err
			}
			m[n.Content[i].Value] = val
		}
		v = m
	case yaml.SequenceNode:
		l := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			val, err := decode(c)
			if err != nil {
				return nil, err
			}
			l = append(l, val)
		}
		v = l
	case yaml.ScalarNode:
		var s any
		if strings.HasPrefix(n.Tag, "!") && !strings.HasPrefix(n.Tag, "!!") {
			s = n.Value
		} else if err := n.Decode(&s); err != nil {
			return nil, fmt.Errorf("line %d: %w", n.Line, err)
		}
		v = s
	}
	if !strings.HasPrefix(n.Tag, "!") || strings.HasPrefix(n.Tag, "!!") {
		return v, nil
	}
	long, ok := fn[n.Tag]
	if !ok {
		return nil, fmt.Errorf("line %d: unknown intrinsic tag %s", n.Line, n.Tag)
	}
	if long == "Fn::GetAtt" {
		if s, ok := v.(string); ok {
			res, attr, found := strings.Cut(s, ".")
			if !found {
				return nil, fmt.Errorf("line %d: !GetAtt %q needs Resource.Attribute", n.Line, s)
			}
			v = []any{res, attr}
		}
	}
	return map[string]any{long: v}, nil
}

func load(t *testing.T, src []byte) map[string]any {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		t.Fatal(err)
	}
	v, err := decode(&doc)
	if err != nil {
		t.Fatal(err)
	}
	m, ok := v.(map[string]any)
	if !ok {
		t.Fatal("template is not a mapping")
	}
	return m
}

var pseudo = map[string]bool{
	"AWS::AccountId": true, "AWS::NotificationARNs": true, "AWS::NoValue": true, "AWS::Partition": true,
	"AWS::Region": true, "AWS::StackId": true, "AWS::StackName": true, "AWS::URLSuffix": true,
}

var subVar = regexp.MustCompile(`\$\{([^!}][^}]*)\}`)

// unresolved walks the template and returns every reference that does not resolve.
func unresolved(tpl map[string]any) []string {
	sect := func(name string) map[string]any { m, _ := tpl[name].(map[string]any); return m }
	params, resources, conds, mappings := sect("Parameters"), sect("Resources"), sect("Conditions"), sect("Mappings")
	var bad []string
	ref := func(where, name string, locals map[string]bool) {
		if _, ok := params[name]; ok {
			return
		}
		if _, ok := resources[name]; ok {
			return
		}
		if pseudo[name] || locals[name] {
			return
		}
		bad = append(bad, fmt.Sprintf("%s: Ref %s", where, name))
	}
	cond := func(where string, c any) {
		name, _ := c.(string)
		if _, ok := conds[name]; !ok {
			bad = append(bad, fmt.Sprintf("%s: Condition %v", where, c))
		}
	}
	var walk func(where string, v any, locals map[string]bool)
	walk = func(where string, v any, locals map[string]bool) {
		switch x := v.(type) {
		case []any:
			for i, e := range x {
				walk(fmt.Sprintf("%s[%d]", where, i), e, locals)
			}
		case map[string]any:
			if len(x) == 1 {
				for k, arg := range x {
					switch k {
					case "Ref":
						s, _ := arg.(string)
						ref(where, s, locals)
						return
					case "Fn::GetAtt":
						l, _ := arg.([]any)
						if len(l) != 2 {
							bad = append(bad, fmt.Sprintf("%s: GetAtt %v", where, arg))
							return
						}
						if _, ok := resources[fmt.Sprint(l[0])]; !ok {
							bad = append(bad, fmt.Sprintf("%s: GetAtt %v", where, l[0]))
						}
						return
					case "Fn::Sub":
						str, vars := "", map[string]bool{}
						for k2 := range locals {
							vars[k2] = true
						}
						switch a := arg.(type) {
						case string:
							str = a
						case []any:
							str, _ = a[0].(string)
							if len(a) > 1 {
								m, _ := a[1].(map[string]any)
								for name, val := range m {
									vars[name] = true
									walk(where+".Sub."+name, val, locals)
								}
							}
						}
						for _, m := range subVar.FindAllStringSubmatch(str, -1) {
							name := m[1]
							if res, _, dotted := strings.Cut(name, "."); dotted && !pseudo[name] {
								if _, ok := resources[res]; !ok {
									bad = append(bad, fmt.Sprintf("%s: Sub ${%s}", where, name))
								}
								continue
							}
							ref(where+".Sub", name, vars)
						}
						return
					case "Fn::If":
						l, _ := arg.([]any)
						if len(l) != 3 {
							bad = append(bad, fmt.Sprintf("%s: If needs 3 arguments: %v", where, arg))
							return
						}
						cond(where, l[0])
						walk(where+".If", l[1:], locals)
						return
					case "Condition":
						if s, ok := arg.(string); ok {
							cond(where, s)
							return
						}
					case "Fn::FindInMap":
						l, _ := arg.([]any)
						if len(l) != 3 {
							bad = append(bad, fmt.Sprintf("%s: FindInMap %v", where, arg))
							return
						}
						mp, ok := mappings[fmt.Sprint(l[0])].(map[string]any)
						if !ok {
							bad = append(bad, fmt.Sprintf("%s: FindInMap mapping %v", where, l[0]))
						} else if top, isStr := l[1].(string); isStr {
							second, ok := mp[top].(map[string]any)
							if !ok {
								bad = append(bad, fmt.Sprintf("%s: FindInMap key %v", where, top))
							} else if k2, isStr := l[2].(string); isStr {
								if _, ok := second[k2]; !ok {
									bad = append(bad, fmt.Sprintf("%s: FindInMap key %v.%v", where, top, k2))
								}
							}
						}
						walk(where+".FindInMap", l[1:], locals)
						return
					}
				}
			}
			keys := make([]string, 0, len(x))
			for k := range x {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				walk(where+"."+k, x[k], locals)
			}
		}
	}
	for name, r := range resources {
		rm, _ := r.(map[string]any)
		if c, ok := rm["Condition"]; ok {
			cond("Resources."+name+".Condition", c)
		}
		switch d := rm["DependsOn"].(type) {
		case string:
			ref("Resources."+name+".DependsOn", d, nil)
		case []any:
			for _, e := range d {
				ref("Resources."+name+".DependsOn", fmt.Sprint(e), nil)
			}
		}
		walk("Resources."+name+".Properties", rm["Properties"], nil)
		walk("Resources."+name+".Metadata", rm["Metadata"], nil)
	}
	for name, o := range sect("Outputs") {
		om, _ := o.(map[string]any)
		if c, ok := om["Condition"]; ok {
			cond("Outputs."+name+".Condition", c)
		}
		walk("Outputs."+name, om["Value"], nil)
	}
	walk("Conditions", conds, nil)
	walk("Globals", tpl["Globals"], nil)
	walk("Rules", tpl["Rules"], nil)
	sort.Strings(bad)
	return bad
}

func readTemplate(t *testing.T) map[string]any {
	t.Helper()
	src, err := os.ReadFile(filepath.Join(testenv.Root(), "template.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return load(t, src)
}

func TestEveryReferenceResolves(t *testing.T) {
	if bad := unresolved(readTemplate(t)); len(bad) > 0 {
		t.Errorf("unresolved references:\n  %s", strings.Join(bad, "\n  "))
	}
}

// TestCheckerCatchesBrokenReferences keeps the checker honest.
func TestCheckerCatchesBrokenReferences(t *testing.T) {
	tpl := load(t, []byte(`
Parameters:
  P: {Type: String}
Conditions:
  C: !Equals [!Ref P, x]
Mappings:
  M: {k: {v: 1}}
Resources:
  Q:
    Type: AWS::SQS::Queue
    Condition: Nope
    Properties:
      A: !Ref Missing
      B: !GetAtt Ghost.Arn
      C: !Sub "${P}-${Missing2}-${Ghost2.Arn}-${AWS::Region}-${!Literal}"
      D: !If [NoCond, a, !Ref P]
      E: !Sub ["${X}-${Y}", {X: !Ref P}]
      F: !FindInMap [M, k, w]
      G: !Ref Q
`))
	got := strings.Join(unresolved(tpl), "\n")
	t.Logf("reported:\n%s", got)
	for _, want := range []string{"Ref Missing", "GetAtt Ghost", "${Missing2}"[2:10], "Ghost2.Arn", "Condition NoCond", "Condition Nope", "Ref Y", "key k.w"} {
		if !strings.Contains(got, want) {
			t.Errorf("checker missed %q; reported:\n%s", want, got)
		}
	}
	for _, ok := range []string{"Ref P", "Ref Q", "AWS::Region", "Literal", "Ref X"} {
		if strings.Contains(got, ok+"\n") || strings.HasSuffix(got, ok) {
			t.Errorf("checker wrongly reported %q:\n%s", ok, got)
		}
	}
}
