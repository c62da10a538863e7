package awstest

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/facefleet/facefleet/internal/testenv"
)

// Tiers name the principals of template.yaml that the rig gives users to, and the
// resource whose policies each one gets.
var Tiers = map[string]string{
	"web":      "WebRole",
	"app":      "AppRole",
	"scaler":   "ScalerFunction",
	"overflow": "OverflowFunction",
}

// Template is template.yaml parsed with its short-form intrinsics (!Ref, !Sub,
// ...) turned into their long forms ({"Ref": ...}, {"Fn::Sub": ...}).
type Template struct {
	Parameters map[string]any `yaml:"Parameters"`
	Conditions map[string]any `yaml:"Conditions"`
	Mappings   map[string]any `yaml:"Mappings"`
	Resources  map[string]struct {
		Type       string         `yaml:"Type"`
		Properties map[string]any `yaml:"Properties"`
	} `yaml:"Resources"`
}

// LoadTemplate reads path (default: the repository's template.yaml).
func LoadTemplate(path string) (*Template, error) {
	if path == "" {
		path = filepath.Join(testenv.Root(), "template.yaml")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("awstest: read template: %w", err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		return nil, fmt.Errorf("awstest: parse %s: %w", path, err)
	}
	longForms(&root)
	var t Template
	if err := root.Decode(&t); err != nil {
		return nil, fmt.Errorf("awstest: decode %s: %w", path, err)
	}
	return &t, nil
}

// longForms rewrites tagged nodes (!Ref X) into mappings ({Ref: X}).
func longForms(n *yaml.Node) {
	for _, c := range n.Content {
		longForms(c)
	}
	if !strings.HasPrefix(n.Tag, "!") || strings.HasPrefix(n.Tag, "!!") {
		return
	}
	name := strings.TrimPrefix(n.Tag, "!")
	key := "Fn::" + name
	if name == "Ref" || name == "Condition" {
		key = name
	}
	val := *n
	val.Tag = ""
	switch val.Kind {
	case yaml.ScalarNode:
		val.Tag = "!!str"
		if name == "GetAtt" { // !GetAtt A.B -> [A, B]
			parts := strings.SplitN(val.Value, ".", 2)
			val = yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
			for _, p := range parts {
				val.Content = append(val.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: p})
			}
		}
	case yaml.SequenceNode:
		val.Tag = "!!seq"
	case yaml.MappingNode:
		val.Tag = "!!map"
	}
	*n = yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Content: []*yaml.Node{
		{Kind: yaml.ScalarNode, Tag: "!!str", Value: key}, &val,
	}}
}

// Stack gives the template's logical resources the values a test created them
// with: Refs (a queue's URL, a bucket's name, a launch template's id) and
// Attrs ("RequestQueue.Arn"). Resources not listed get names derived from
// Name, so a policy can be resolved before (or without) creating everything.
type Stack struct {
	Name      string // AWS::StackName
	Region    string
	Account   string
	Endpoint  string // where queue URLs point
	Params    map[string]string
	Refs      map[string]string
	Attrs     map[string]string
	Partition string
}

// QueueName, BucketName: the default physical names of logical resources.
func (s *Stack) QueueName(logical string) string { return s.Name + "-" + logical }

// BucketName is lower case (S3's rule).
func (s *Stack) BucketName(logical string) string { return strings.ToLower(s.Name + "-" + logical) }

// QueueURL and QueueARN of a logical queue.
func (s *Stack) QueueURL(logical string) string {
	return s.Endpoint + "/" + s.Account + "/" + s.QueueName(logical)
}

// QueueARN of a logical queue.
func (s *Stack) QueueARN(logical string) string {
	return "arn:aws:sqs:" + s.Region + ":" + s.Account + ":" + s.QueueName(logical)
}

type resolver struct {
	t     *Template
	s     *Stack
	conds map[string]bool
}

// errNoValue marks AWS::NoValue: the enclosing property or list item is dropped.
var errNoValue = errors.New("AWS::NoValue")

func (r *resolver) ref(name string) (any, error) {
	switch name {
	case "AWS::StackName":
		return r.s.Name, nil
	case "AWS::Region":
		return r.s.Region, nil
	case "AWS::AccountId":
		return r.s.Account, nil
	case "AWS::Partition":
		return r.s.Partition, nil
	case "AWS::URLSuffix":
		return "amazonaws.com", nil
	case "AWS::NoValue":
		return nil, errNoValue
	}
	if v, ok := r.s.Refs[name]; ok {
		return v, nil
	}
	if v, ok := r.s.Params[name]; ok {
		return v, nil
	}
	if p, ok := r.t.Parameters[name].(map[string]any); ok {
		if d, ok := p["Default"]; ok {
			return fmt.Sprint(d), nil
		}
		return nil, fmt.Errorf("parameter %s has no default; set Stack.Params[%q]", name, name)
	}
	res, ok := r.t.Resources[name]
	if !ok {
		return nil, fmt.Errorf("Ref to unknown %q", name)
	}
	switch res.Type {
	case "AWS::SQS::Queue":
		return r.s.QueueURL(name), nil
	case "AWS::S3::Bucket":
		return r.s.BucketName(name), nil
	case "AWS::IAM::Role", "AWS::IAM::InstanceProfile", "AWS::Serverless::Function", "AWS::Lambda::Function",
		"AWS::SNS::Topic", "AWS::Logs::LogGroup", "AWS::CloudWatch::Alarm":
		return r.s.Name + "-" + name, nil
	case "AWS::EC2::LaunchTemplate":
		return "lt-0" + fmt.Sprintf("%016x", hash(r.s.Name+name)), nil
	case "AWS::EC2::SecurityGroup":
		return "sg-0" + fmt.Sprintf("%016x", hash(r.s.Name+name)), nil
	}
	return nil, fmt.Errorf("Ref to %s (%s): the rig does not know its physical id; set Stack.Refs[%q]", name, res.Type, name)
}

func hash(s string) uint64 {
	var h uint64 = 14695981039346656037
	for i := 0; i < len(s); i++ {
		h = (h ^ uint64(s[i])) * 1099511628211
	}
	return h >> 4
}

func (r *resolver) getAtt(name, attr string) (any, error) {
	if v, ok := r.s.Attrs[name+"."+attr]; ok {
		return v, nil
	}
	res, ok := r.t.Resources[name]
	if !ok {
		return nil, fmt.Errorf("GetAtt of unknown %q", name)
	}
	switch res.Type + "." + attr {
	case "AWS::SQS::Queue.Arn":
		return r.s.QueueARN(name), nil
	case "AWS::SQS::Queue.QueueName":
		return r.s.QueueName(name), nil
	case "AWS::S3::Bucket.Arn":
		return "arn:" + r.s.Partition + ":s3:::" + r.s.BucketName(name), nil
	case "AWS::IAM::Role.Arn":
		return "arn:" + r.s.Partition + ":iam::" + r.s.Account + ":role/" + r.s.Name + "-" + name, nil
	case "AWS::Serverless::Function.Arn", "AWS::Lambda::Function.Arn":
		return "arn:" + r.s.Partition + ":lambda:" + r.s.Region + ":" + r.s.Account + ":function:" + r.s.Name + "-" + name, nil
	case "AWS::EC2::SecurityGroup.GroupId":
		return r.ref(name)
	}
	return nil, fmt.Errorf("GetAtt %s.%s (%s): the rig does not know it; set Stack.Attrs[%q]", name, attr, res.Type, name+"."+attr)
}

func (r *resolver) cond(name string) (bool, error) {
	if v, ok := r.conds[name]; ok {
		return v, nil
	}
	c, ok := r.t.Conditions[name]
	if !ok {
		return false, fmt.Errorf("unknown condition %q", name)
	}
	v, err := r.eval(c)
	if err != nil {
		return false, fmt.Errorf("condition %s: %w", name, err)
	}
	b, ok := v.(bool)
	if !ok {
		return false, fmt.Errorf("condition %s is %T, not a boolean", name, v)
	}
	r.conds[name] = b
	return b, nil
}

var subVar = regexp.MustCompile(`\$\{([^}!][^}]*)\}`)

// eval resolves intrinsics in v.
func (r *resolver) eval(v any) (any, error) {
	switch x := v.(type) {
	case []any:
		out := make([]any, 0, len(x))
		for _, e := range x {
			ev, err := r.eval(e)
			if errors.Is(err, errNoValue) {
				continue
			}
			if err != nil {
				return nil, err
			}
			out = append(out, ev)
		}
		return out, nil
	case map[string]any:
		if len(x) == 1 {
			for k, arg := range x {
				if k == "Ref" || k == "Condition" || strings.HasPrefix(k, "Fn::") {
					return r.intrinsic(k, arg)
				}
			}
		}
		out := make(map[string]any, len(x))
		for k, e := range x {
			ev, err := r.eval(e)
			if errors.Is(err, errNoValue) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			out[k] = ev
		}
		return out, nil
	}
	return v, nil
}

func (r *resolver) str(v any) (string, error) {
	ev, err := r.eval(v)
	if err != nil {
		return "", err
	}
	switch s := ev.(type) {
	case string:
		return s, nil
	case int, float64, bool:
		return fmt.Sprint(s), nil
	}
	return "", fmt.Errorf("want a string, got %T", ev)
}

func (r *resolver) intrinsic(k string, arg any) (any, error) {
	switch k {
	case "Ref":
		name, err := r.str(arg)
		if err != nil {
			return nil, err
		}
		return r.ref(name)
	case "Condition":
		name, err := r.str(arg)
		if err != nil {
			return nil, err
		}
		return r.cond(name)
	case "Fn::GetAtt":
		parts, ok := arg.([]any)
		if !ok || len(parts) != 2 {
			return nil, fmt.Errorf("Fn::GetAtt wants [Resource, Attribute], got %v", arg)
		}
		a, err1 := r.str(parts[0])
		b, err2 := r.str(parts[1])
		if err := errors.Join(err1, err2); err != nil {
			return nil, err
		}
		return r.getAtt(a, b)
	case "Fn::Sub":
		var tmpl string
		vars := map[string]any{}
		switch a := arg.(type) {
		case string:
			tmpl = a
		case []any:
			if len(a) != 2 {
				return nil, fmt.Errorf("Fn::Sub wants a string or [string, vars]")
			}
			tmpl, _ = a[0].(string)
			m, _ := a[1].(map[string]any)
			for n, e := range m {
				vars[n] = e
			}
		default:
			return nil, fmt.Errorf("Fn::Sub of %T", arg)
		}
		var firstErr error
		out := subVar.ReplaceAllStringFunc(tmpl, func(m string) string {
			name := m[2 : len(m)-1]
			var v any
			var err error
			if e, ok := vars[name]; ok {
				v, err = r.str(e)
			} else if a, b, ok := strings.Cut(name, "."); ok && !strings.HasPrefix(name, "AWS::") {
				v, err = r.getAtt(a, b)
			} else {
				v, err = r.ref(name)
			}
			if err != nil && firstErr == nil {
				firstErr = fmt.Errorf("Fn::Sub ${%s}: %w", name, err)
			}
			return fmt.Sprint(v)
		})
		return strings.ReplaceAll(out, "${!", "${"), firstErr
	case "Fn::If":
		a, ok := arg.([]any)
		if !ok || len(a) != 3 {
			return nil, fmt.Errorf("Fn::If wants [condition, then, else]")
		}
		name, _ := a[0].(string)
		c, err := r.cond(name)
		if err != nil {
			return nil, err
		}
		if c {
			return r.eval(a[1])
		}
		return r.eval(a[2])
	case "Fn::Equals":
		a, ok := arg.([]any)
		if !ok || len(a) != 2 {
			return nil, fmt.Errorf("Fn::Equals wants two values")
		}
		x, err1 := r.str(a[0])
		y, err2 := r.str(a[1])
		if err := errors.Join(err1, err2); err != nil {
			return nil, err
		}
		return x == y, nil
	case "Fn::Not", "Fn::And", "Fn::Or":
		a, ok := arg.([]any)
		if !ok || len(a) == 0 {
			return nil, fmt.Errorf("%s wants a list of conditions", k)
		}
		vals := make([]bool, len(a))
		for i, e := range a {
			ev, err := r.eval(e)
			if err != nil {
				return nil, err
			}
			b, ok := ev.(bool)
			if !ok {
				return nil, fmt.Errorf("%s of a %T", k, ev)
			}
			vals[i] = b
		}
		switch k {
		case "Fn::Not":
			return !vals[0], nil
		case "Fn::And":
			for _, b := range vals {
				if !b {
					return false, nil
				}
			}
			return true, nil
		}
		for _, b := range vals {
			if b {
				return true, nil
			}
		}
		return false, nil
	case "Fn::FindInMap":
		a, ok := arg.([]any)
		if !ok || len(a) != 3 {
			return nil, fmt.Errorf("Fn::FindInMap wants [map, key, key]")
		}
		keys := make([]string, 3)
		for i, e := range a {
			s, err := r.str(e)
			if err != nil {
				return nil, err
			}
			keys[i] = s
		}
		m1, _ := r.t.Mappings[keys[0]].(map[string]any)
		m2, _ := m1[keys[1]].(map[string]any)
		v, ok := m2[keys[2]]
		if !ok {
			return nil, fmt.Errorf("Fn::FindInMap %v: no such entry", keys)
		}
		return r.eval(v)
	case "Fn::Join":
		a, ok := arg.([]any)
		if !ok || len(a) != 2 {
			return nil, fmt.Errorf("Fn::Join wants [sep, list]")
		}
		sep, _ := a[0].(string)
		lv, err := r.eval(a[1])
		if err != nil {
			return nil, err
		}
		items, _ := lv.([]any)
		parts := make([]string, len(items))
		for i, e := range items {
			parts[i] = fmt.Sprint(e)
		}
		return strings.Join(parts, sep), nil
	case "Fn::Select":
		a, ok := arg.([]any)
		if !ok || len(a) != 2 {
			return nil, fmt.Errorf("Fn::Select wants [index, list]")
		}
		is, err := r.str(a[0])
		if err != nil {
			return nil, err
		}
		i, err := strconv.Atoi(is)
		if err != nil {
			return nil, err
		}
		lv, err := r.eval(a[1])
		if err != nil {
			return nil, err
		}
		items, _ := lv.([]any)
		if i < 0 || i >= len(items) {
			return nil, fmt.Errorf("Fn::Select index %d of %d", i, len(items))
		}
		return items[i], nil
	}
	return nil, fmt.Errorf("intrinsic %s is not supported by the rig's resolver", k)
}

// Policy is one named identity policy, resolved to JSON.
type Policy struct {
	Name     string
	Document string
}

// TierPolicies resolves the identity policies template.yaml gives tier ("web",
// "app", "scaler", "overflow": see Tiers) for stack s: an IAM role's Policies and
// ManagedPolicyArns, or a SAM function's Policies (inline documents and managed
// policy ARNs; SAM policy templates are refused, the rig cannot expand them).
func (t *Template) TierPolicies(tier string, s *Stack) ([]Policy, []string, error) {
	logical, ok := Tiers[tier]
	if !ok {
		return nil, nil, fmt.Errorf("awstest: unknown tier %q", tier)
	}
	res, ok := t.Resources[logical]
	if !ok {
		return nil, nil, fmt.Errorf("awstest: template has no %s for tier %s", logical, tier)
	}
	if s.Partition == "" {
		s.Partition = "aws"
	}
	r := &resolver{t: t, s: s, conds: map[string]bool{}}
	var pols []Policy
	var managed []string
	addDoc := func(name string, doc any) error {
		ev, err := r.eval(doc)
		if err != nil {
			return fmt.Errorf("awstest: %s policy %s: %w", logical, name, err)
		}
		b, err := json.Marshal(ev)
		if err != nil {
			return err
		}
		pols = append(pols, Policy{Name: name, Document: string(b)})
		return nil
	}
	switch res.Type {
	case "AWS::IAM::Role":
		list, _ := res.Properties["Policies"].([]any)
		for i, p := range list {
			m, _ := p.(map[string]any)
			name, _ := m["PolicyName"].(string)
			if name == "" {
				name = fmt.Sprintf("%s-%d", logical, i)
			}
			if err := addDoc(name, m["PolicyDocument"]); err != nil {
				return nil, nil, err
			}
		}
		arns, err := r.eval(res.Properties["ManagedPolicyArns"])
		if err != nil {
			return nil, nil, fmt.Errorf("awstest: %s ManagedPolicyArns: %w", logical, err)
		}
		if l, ok := arns.([]any); ok {
			for _, a := range l {
				managed = append(managed, fmt.Sprint(a))
			}
		}
	case "AWS::Serverless::Function":
		list, ok := res.Properties["Policies"].([]any)
		if !ok {
			list = []any{res.Properties["Policies"]}
		}
		for i, p := range list {
			switch x := p.(type) {
			case string:
				managed = append(managed, x)
			case map[string]any:
				if _, ok := x["Statement"]; ok {
					if err := addDoc(fmt.Sprintf("%s-%d", logical, i), x); err != nil {
						return nil, nil, err
					}
					continue
				}
				keys := make([]string, 0, len(x))
				for k := range x {
					keys = append(keys, k)
				}
				sort.Strings(keys)
				return nil, nil, fmt.Errorf("awstest: %s uses SAM policy template %v, which the rig cannot expand; write the statements out", logical, keys)
			}
		}
	default:
		return nil, nil, fmt.Errorf("awstest: %s is a %s, not a role or function", logical, res.Type)
	}
	if len(pols) == 0 && len(managed) == 0 {
		return nil, nil, fmt.Errorf("awstest: %s has no policies", logical)
	}
	return pols, managed, nil
}

// FunctionEnv resolves the environment variables template.yaml gives the SAM
// function logical for stack s (Environment.Variables, intrinsics resolved;
// AWS::NoValue drops a variable), so a test runs the function with exactly
// the deployed variables.
func (t *Template) FunctionEnv(logical string, s *Stack) (map[string]string, error) {
	res, ok := t.Resources[logical]
	if !ok || res.Type != "AWS::Serverless::Function" {
		return nil, fmt.Errorf("awstest: template has no SAM function %s", logical)
	}
	if s.Partition == "" {
		s.Partition = "aws"
	}
	r := &resolver{t: t, s: s, conds: map[string]bool{}}
	vars, _ := res.Properties["Environment"].(map[string]any)
	ev, err := r.eval(vars["Variables"])
	if err != nil {
		return nil, fmt.Errorf("awstest: %s environment: %w", logical, err)
	}
	m, _ := ev.(map[string]any)
	out := make(map[string]string, len(m))
	for k, v := range m {
		switch x := v.(type) {
		case string:
			out[k] = x
		case int, float64, bool:
			out[k] = fmt.Sprint(x)
		default:
			return nil, fmt.Errorf("awstest: %s environment %s is %T, not a scalar", logical, k, v)
		}
	}
	return out, nil
}
