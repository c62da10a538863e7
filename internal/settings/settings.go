// Package settings declares every facefleet setting once: its flag name, its
// environment variable, its default, its limits and its help. Every command
// (`facefleet up`, `webtier`, `apptier`, benchservice) binds the settings it uses
// to its flag set, the scaler Lambda reads its own from the environment, and the
// README's configuration table is generated from the same declarations
// (`facefleet config -markdown`), so a setting has one name, one default and
// one set of limits everywhere.
//
// A value resolves, highest first: the flag given on the command line, the
// environment variable when it is set and not empty, then the default. Every
// problem (malformed value, value out of limits, required setting missing) is
// reported at once.
//
// To add a setting: declare it in All (declared.go) with the commands that read
// it, read it in those commands through Values (or service.TiersFromSettings for
// the tiers' options), and regenerate the README's table between its markers
// with `go run ./cmd/facefleet config -markdown`; TestReadmeTable fails until
// then, and TestTemplateUsesDeclaredSettings keeps template.yaml to declared
// names.
package settings

import (
	"errors"
	"flag"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Command names a program that reads settings.
type Command string

// The programs that read settings.
const (
	Up      Command = "up"
	Webtier Command = "webtier"
	Apptier Command = "apptier"
	Scaler  Command = "scaler" // the scaler Lambda: environment only
	// Overflow is the overflow Lambda (functions/overflow): environment only.
	Overflow Command = "overflow"
	Bench    Command = "benchservice"
	// enroll and recognize read the engine's settings.
	Enroll    Command = "enroll"
	Recognize Command = "recognize"
	// keys manages API keys in the data store (local folder or output bucket).
	Keys Command = "keys"
)

// Commands lists every command, in the order the README's table shows them.
func Commands() []Command {
	return []Command{Up, Webtier, Apptier, Scaler, Overflow, Bench, Enroll, Recognize, Keys}
}

// Kind is a setting's value type.
type Kind int

// Value types.
const (
	String Kind = iota
	Int
	Float
	Duration
	Bool
)

func (k Kind) String() string {
	return [...]string{"string", "integer", "number", "duration", "bool"}[k]
}

// Setting is one declared setting.
type Setting struct {
	Name string // flag name, without the dash
	Env  string // environment variable
	Kind Kind
	// Default is the value's text ("" for none).
	Default string
	// Min and Max bound Int, Float and Duration values, inclusive, in the value's
	// text form ("" for no bound).
	Min, Max string
	// OneOf lists the accepted values of a String setting (nil: any).
	OneOf []string
	// Check, when set, validates a non-empty value's text.
	Check func(string) error
	Help  string
	// For lists the commands that read the setting; Required those of them that
	// need a non-empty value.
	For, Required []Command
	// Together names a setting that must be set if and only if this one is.
	Together string
	// Aliases are older flag names still accepted (deprecated; kept one release).
	Aliases []string
}

// Uses reports whether cmd reads the setting.
func (s Setting) Uses(cmd Command) bool { return slices.Contains(s.For, cmd) }

// parse converts text to the setting's kind and checks its limits. Empty text is
// the zero value, always accepted (Required is checked separately).
func (s Setting) parse(text string) (any, error) {
	if text == "" {
		switch s.Kind {
		case Int:
			return 0, nil
		case Float:
			return 0.0, nil
		case Duration:
			return time.Duration(0), nil
		case Bool:
			return false, nil
		}
		return "", nil
	}
	switch s.Kind {
	case String:
		if s.OneOf != nil && !slices.Contains(s.OneOf, text) {
			return nil, fmt.Errorf("must be one of %s", strings.Join(s.OneOf, ", "))
		}
		if s.Check != nil {
			if err := s.Check(text); err != nil {
				return nil, err
			}
		}
		return text, nil
	case Bool:
		b, err := strconv.ParseBool(text)
		if err != nil {
			return nil, errors.New("must be true or false (or 1, 0)")
		}
		return b, nil
	case Int:
		n, err := strconv.Atoi(text)
		if err != nil {
			return nil, fmt.Errorf("must be an integer%s", s.limitText())
		}
		return n, s.inLimits(float64(n))
	case Float:
		f, err := strconv.ParseFloat(text, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, fmt.Errorf("must be a number%s", s.limitText())
		}
		return f, s.inLimits(f)
	case Duration:
		d, err := time.ParseDuration(text)
		if err != nil {
			return nil, fmt.Errorf("must be a duration like 5s or 1m%s", s.limitText())
		}
		return d, s.inLimits(float64(d))
	}
	return nil, fmt.Errorf("unknown kind %d", s.Kind)
}

// bound parses a Min or Max ("" means none).
func (s Setting) bound(text string) (float64, bool) {
	if text == "" {
		return 0, false
	}
	if s.Kind == Duration {
		d, err := time.ParseDuration(text)
		return float64(d), err == nil
	}
	f, err := strconv.ParseFloat(text, 64)
	return f, err == nil
}

func (s Setting) inLimits(v float64) error {
	lo, hasLo := s.bound(s.Min)
	hi, hasHi := s.bound(s.Max)
	if (hasLo && v < lo) || (hasHi && v > hi) {
		return fmt.Errorf("out of range%s", s.limitText())
	}
	return nil
}

// Limits is the setting's accepted values in words ("" when any value goes).
func (s Setting) Limits() string {
	switch {
	case s.OneOf != nil:
		return strings.Join(s.OneOf, ", ")
	case s.Min != "" && s.Max != "":
		return s.Min + " .. " + s.Max
	case s.Min != "":
		return ">= " + s.Min
	case s.Max != "":
		return "<= " + s.Max
	}
	return ""
}

func (s Setting) limitText() string {
	if l := s.Limits(); l != "" && s.OneOf == nil {
		return " in " + l
	}
	return ""
}

// Lookup returns the declared setting of that name.
func Lookup(name string) (Setting, bool) {
	for _, s := range All() {
		if s.Name == name {
			return s, true
		}
	}
	return Setting{}, false
}

// For returns the settings cmd reads, in declaration order.
func For(cmd Command) []Setting {
	var out []Setting
	for _, s := range All() {
		if s.Uses(cmd) {
			out = append(out, s)
		}
	}
	return out
}

// textFlag is a setting's flag: it keeps the text, parsed after every source is
// known, so errors are reported together.
type textFlag struct {
	text  string
	given bool
	kind  Kind
}

func (f *textFlag) String() string     { return f.text }
func (f *textFlag) Set(v string) error { f.text, f.given = v, true; return nil }
func (f *textFlag) IsBoolFlag() bool   { return f.kind == Bool }

// Binding is a command's settings bound to its flag set.
type Binding struct {
	cmd   Command
	flags map[string]*textFlag
}

// Bind registers cmd's settings (and their aliases) on fs. fs may be nil (the
// Lambda has no flags). Call Resolve after fs.Parse.
func Bind(cmd Command, fs *flag.FlagSet) *Binding {
	b := &Binding{cmd: cmd, flags: map[string]*textFlag{}}
	for _, s := range For(cmd) {
		f := &textFlag{text: s.Default, kind: s.Kind}
		b.flags[s.Name] = f
		if fs == nil {
			continue
		}
		help := s.Help
		if l := s.Limits(); l != "" {
			help += " [" + l + "]"
		}
		env := " (env " + s.Env + ")"
		if s.Kind != Bool { // flag's -h shows the backquoted kind as the value's name
			env = " (env " + s.Env + ", a `" + s.Kind.String() + "`)"
		}
		fs.Var(f, s.Name, help+env)
		for _, a := range s.Aliases {
			fs.Var(f, a, "deprecated: use -"+s.Name)
		}
	}
	return b
}

// FromEnv resolves cmd's settings from the environment alone (the Lambda).
func FromEnv(cmd Command, getenv func(string) string) (*Values, error) {
	return Bind(cmd, nil).Resolve(getenv)
}

// Resolve reads every setting from its flag, its environment variable or its
// default, and checks them all, reporting every problem at once.
func (b *Binding) Resolve(getenv func(string) string) (*Values, error) {
	v := &Values{cmd: b.cmd, vals: map[string]any{}, set: map[string]bool{}}
	var errs []error
	for _, s := range For(b.cmd) {
		f := b.flags[s.Name]
		text, from := f.text, "-"+s.Name
		if !f.given {
			if e := strings.TrimSpace(getenv(s.Env)); e != "" {
				text, from = e, s.Env+" (for -"+s.Name+")"
			} else {
				from = "default of -" + s.Name
			}
		}
		val, err := s.parse(text)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s %q: %w", from, text, err))
			continue
		}
		if text == "" && slices.Contains(s.Required, b.cmd) {
			errs = append(errs, fmt.Errorf("-%s (env %s) is required: %s", s.Name, s.Env, s.Help))
		}
		v.vals[s.Name], v.set[s.Name] = val, text != ""
	}
	for _, s := range For(b.cmd) {
		if s.Together != "" && v.set[s.Name] && !v.set[s.Together] {
			o, _ := Lookup(s.Together)
			errs = append(errs, fmt.Errorf("-%s is set but -%s (env %s) is not: set both, or neither", s.Name, o.Name, o.Env))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("%s configuration: %w", b.cmd, err)
	}
	return v, nil
}

// Values are a command's resolved settings. The accessors panic when asked for a
// setting the command did not declare or of another kind: that is a programming
// error, caught by any test that runs the command.
type Values struct {
	cmd  Command
	vals map[string]any
	set  map[string]bool
}

func get[T any](v *Values, name string) T {
	x, ok := v.vals[name]
	if !ok {
		panic(fmt.Sprintf("settings: %q is not a setting of %s", name, v.cmd))
	}
	t, ok := x.(T)
	if !ok {
		panic(fmt.Sprintf("settings: %q is a %T, not a %T", name, x, t))
	}
	return t
}

// String returns a String setting.
func (v *Values) String(name string) string { return get[string](v, name) }

// Int returns an Int setting.
func (v *Values) Int(name string) int { return get[int](v, name) }

// Float returns a Float setting.
func (v *Values) Float(name string) float64 { return get[float64](v, name) }

// Duration returns a Duration setting.
func (v *Values) Duration(name string) time.Duration { return get[time.Duration](v, name) }

// Bool returns a Bool setting.
func (v *Values) Bool(name string) bool { return get[bool](v, name) }

// Has reports whether the command declared the setting.
func (v *Values) Has(name string) bool {
	_, ok := v.vals[name]
	return ok
}

// Set reports whether the setting has a non-empty value.
func (v *Values) Set(name string) bool {
	get[any](v, name)
	return v.set[name]
}

// absoluteURL checks an endpoint or queue URL.
func absoluteURL(text string) error {
	u, err := url.Parse(text)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("must be an absolute URL like http://127.0.0.1:4566")
	}
	return nil
}
