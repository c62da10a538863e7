package settings

import (
	"flag"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// Every declaration is well formed: unique names, envs and aliases, parseable
// defaults and bounds, defaults within limits, required only where read.
func TestDeclarations(t *testing.T) {
	seen := map[string]string{}
	for _, s := range All() {
		for _, key := range append([]string{"flag " + s.Name, "env " + s.Env}, prefix("flag ", s.Aliases)...) {
			if prev, dup := seen[key]; dup {
				t.Errorf("%s declared twice (%s and %s)", key, prev, s.Name)
			}
			seen[key] = s.Name
		}
		if s.Help == "" || len(s.For) == 0 {
			t.Errorf("%s: no help or no command", s.Name)
		}
		if _, err := s.parse(s.Default); err != nil {
			t.Errorf("%s: default %q: %v", s.Name, s.Default, err)
		}
		for _, b := range []string{s.Min, s.Max} {
			if _, ok := s.bound(b); b != "" && !ok {
				t.Errorf("%s: bound %q does not parse", s.Name, b)
			}
		}
		for _, r := range s.Required {
			if !s.Uses(r) {
				t.Errorf("%s: required by %s, which does not read it", s.Name, r)
			}
		}
		if s.Together != "" {
			o, ok := Lookup(s.Together)
			if !ok || o.Together != s.Name {
				t.Errorf("%s: Together %q is not declared both ways", s.Name, s.Together)
			}
		}
		if !strings.HasPrefix(s.Env, "FACEFLEET_") && !strings.HasPrefix(s.Env, "AWS_") {
			t.Errorf("%s: env %s is neither FACEFLEET_* nor the SDK's AWS_*", s.Name, s.Env)
		}
	}
}

func prefix(p string, xs []string) []string {
	var out []string
	for _, x := range xs {
		out = append(out, p+x)
	}
	return out
}

// The constants libraries fall back to are the declared defaults.
func TestDefaultConstants(t *testing.T) {
	v, err := FromEnv(Up, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if v.Duration(RequestTimeout) != 0 || v.Int(MaxBody) != DefaultMaxBody || v.Int(MaxInflightBytes) != DefaultMaxInflightBytes ||
		v.Int(MaxPixels) != DefaultMaxPixels || v.Int(MaxPending) != DefaultMaxPending {
		t.Errorf("declared defaults differ from the constants")
	}
}

// A flag wins over the environment, which wins over the default; an alias sets
// the same value.
func TestPrecedence(t *testing.T) {
	fs := flag.NewFlagSet("up", flag.ContinueOnError)
	b := Bind(Up, fs)
	if err := fs.Parse([]string{"-port", "8080", "-ort-threads", "2"}); err != nil {
		t.Fatal(err)
	}
	v, err := b.Resolve(env(map[string]string{"FACEFLEET_PORT": "9000", "FACEFLEET_IDLE_TIMEOUT": "5s", "FACEFLEET_MAX_PENDING": " "}))
	if err != nil {
		t.Fatal(err)
	}
	if v.Int(Port) != 8080 || v.Duration(IdleTimeout) != 5*time.Second || v.Int(MaxPending) != DefaultMaxPending || v.Int(ORTThreads) != 2 {
		t.Fatalf("port %d idle %s pending %d threads %d; want the flag (8080), the env (5s), the default (%d), 2",
			v.Int(Port), v.Duration(IdleTimeout), v.Int(MaxPending), v.Int(ORTThreads), DefaultMaxPending)
	}

	fs = flag.NewFlagSet("apptier", flag.ContinueOnError)
	b = Bind(Apptier, fs)
	if err := fs.Parse([]string{"-threads", "3", "-wait", "2s"}); err != nil {
		t.Fatal(err)
	}
	all := map[string]string{"FACEFLEET_REQUEST_QUEUE_URL": "http://q/1", "FACEFLEET_RESPONSE_QUEUE_URL": "http://q/2",
		"FACEFLEET_INPUT_BUCKET": "in", "FACEFLEET_OUTPUT_BUCKET": "out"}
	if v, err = b.Resolve(env(all)); err != nil {
		t.Fatal(err)
	}
	if v.Int(ORTThreads) != 3 || v.Duration(WorkerWait) != 2*time.Second {
		t.Fatalf("aliases -threads/-wait gave %d, %s", v.Int(ORTThreads), v.Duration(WorkerWait))
	}
}

// Every problem is reported at once, each naming where the value came from.
func TestErrorsTogether(t *testing.T) {
	fs := flag.NewFlagSet("webtier", flag.ContinueOnError)
	b := Bind(Webtier, fs)
	if err := fs.Parse([]string{"-max-body", "12", "-log-level", "loud", "-app-tag-key", "tier"}); err != nil {
		t.Fatal(err)
	}
	_, err := b.Resolve(env(map[string]string{"FACEFLEET_MAX_PENDING": "many", "FACEFLEET_REQUEST_TIMEOUT": "0s",
		"AWS_ENDPOINT_URL_SQS": "127.0.0.1:4566"}))
	if err == nil {
		t.Fatal("bad configuration accepted")
	}
	for _, want := range []string{
		`-max-body "12": out of range in 1024 .. 1073741824`,
		`-log-level "loud": must be one of debug, info, warn, error`,
		`FACEFLEET_MAX_PENDING (for -max-pending) "many": must be an integer`,
		`FACEFLEET_REQUEST_TIMEOUT (for -request-timeout) "0s": out of range in 1s .. 1h`,
		`AWS_ENDPOINT_URL_SQS (for -sqs-endpoint) "127.0.0.1:4566": must be an absolute URL`,
		"-request-queue-url (env FACEFLEET_REQUEST_QUEUE_URL) is required",
		"-response-queue-url (env FACEFLEET_RESPONSE_QUEUE_URL) is required",
		"-input-bucket (env FACEFLEET_INPUT_BUCKET) is required",
		"-output-bucket (env FACEFLEET_OUTPUT_BUCKET) is required",
		"-app-tag-key is set but -app-tag-value (env FACEFLEET_APP_TAG_VALUE) is not",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q:\n%v", want, err)
		}
	}
}

func TestSelfStop(t *testing.T) {
	for v, ok := range map[string]bool{"ec2": true, "none": true, "exec:shutdown -h now": true, "exec:": false, "exec: ": false,
		"ec2:x": false, "reboot": false} {
		if err := checkSelfStop(v); (err == nil) != ok {
			t.Errorf("self-stop %q: err %v, want ok=%v", v, err, ok)
		}
	}
}

func TestAccessorMisuse(t *testing.T) {
	v, err := FromEnv(Scaler, env(map[string]string{"FACEFLEET_REQUEST_QUEUE_URL": "http://q/1",
		"FACEFLEET_LAUNCH_TEMPLATE_ID": "lt-1", "FACEFLEET_APP_TAG_KEY": "k", "FACEFLEET_APP_TAG_VALUE": "v"}))
	if err != nil {
		t.Fatal(err)
	}
	for name, f := range map[string]func(){"undeclared": func() { v.String(Host) }, "wrong kind": func() { v.String(MaxInstances) }} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			f()
		}()
	}
}

// The README's configuration table is exactly the generated one.
func TestReadmeTable(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok1 := strings.Cut(string(readme), TableBegin+"\n")
	got, _, ok2 := strings.Cut(rest, TableEnd)
	if !ok1 || !ok2 {
		t.Fatalf("README.md has no table between %q and %q", TableBegin, TableEnd)
	}
	var want strings.Builder
	if err := Markdown(&want); err != nil {
		t.Fatal(err)
	}
	if got != want.String() {
		t.Errorf("README.md's configuration table is stale: regenerate it with `go run ./cmd/facefleet config -markdown`.\nwant:\n%s\ngot:\n%s", want.String(), got)
	}
}

// template.yaml configures the tiers and the Lambda only through declared
// settings: every FACEFLEET_* variable it sets is declared, and every flag on a
// tier's command line is one that tier reads.
func TestTemplateUsesDeclaredSettings(t *testing.T) {
	tmpl, err := os.ReadFile("../../template.yaml")
	if err != nil {
		t.Fatal(err)
	}
	envs := map[string]bool{}
	for _, s := range All() {
		envs[s.Env] = true
	}
	for _, v := range regexp.MustCompile(`FACEFLEET_[A-Z0-9_]+`).FindAllString(string(tmpl), -1) {
		if !envs[v] {
			t.Errorf("template.yaml sets %s, which no setting declares", v)
		}
	}
	lines := regexp.MustCompile(`bin/facefleet (webtier|apptier)([^\n]*)`).FindAllStringSubmatch(string(tmpl), -1)
	if len(lines) < 2 {
		t.Fatalf("found %d facefleet command lines in template.yaml; want the web and app tiers'", len(lines))
	}
	for _, l := range lines {
		cmd := Command(l[1])
		for _, f := range regexp.MustCompile(`(?:^|\s)-([a-z0-9-]+)`).FindAllStringSubmatch(l[2], -1) {
			s, ok := Lookup(f[1])
			if !ok || !s.Uses(cmd) {
				t.Errorf("template.yaml runs %s with -%s, which it does not read", cmd, f[1])
			}
		}
	}
}
