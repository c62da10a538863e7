package template_test

// What boots: the user data of both launch templates, and every file it writes
// (the artefact sync script, the systemd units), taken from template.yaml at
// test time. shellcheck and systemd-analyze verify read them as AWS would run
// them; a dry run executes them in a temporary root with logging stubs in place
// of aws, systemctl, useradd, poweroff and sleep.
//
// What the stubs do not model: the S3 stub serves any key under the artefacts
// prefix from memory (no IAM, no eventual consistency), systemctl only logs (no
// unit is started, so FailureAction= is checked by systemd-analyze and by
// reading the unit, not by a real systemd), and sleep returns at once (waits are
// bounded by counting the sleeps the script asks for).

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/facefleet/facefleet/internal/testenv"
)

// eval resolves the few intrinsics the user-data Sub variables use, for an
// x86_64 stack with a stack-created artefacts bucket.
func eval(t *testing.T, tpl map[string]any, v any) string {
	t.Helper()
	conds := map[string]bool{"IsArm64": false, "CreateArtifactsBucket": true}
	switch x := v.(type) {
	case string:
		return x
	case int:
		return strconv.Itoa(x)
	case map[string]any:
		if r, ok := x["Ref"].(string); ok {
			return subValue(t, tpl, r)
		}
		if l, ok := x["Fn::FindInMap"].([]any); ok && len(l) == 3 {
			s := at(tpl, "Mappings", eval(t, tpl, l[0]), eval(t, tpl, l[1]), eval(t, tpl, l[2]))
			if s == nil {
				t.Fatalf("FindInMap %v: no such entry", l)
			}
			return fmt.Sprint(s)
		}
		if l, ok := x["Fn::If"].([]any); ok && len(l) == 3 {
			c, known := conds[fmt.Sprint(l[0])]
			if !known {
				t.Fatalf("condition %v: the test does not know it", l[0])
			}
			if c {
				return eval(t, tpl, l[1])
			}
			return eval(t, tpl, l[2])
		}
	}
	t.Fatalf("cannot evaluate %#v", v)
	return ""
}

// subValue is what CloudFormation would put for ${name}: a parameter's default,
// a pseudo parameter, or a resource's stand-in.
func subValue(t *testing.T, tpl map[string]any, name string) string {
	t.Helper()
	switch name {
	case "AWS::Region":
		return "us-east-1"
	case "AWS::StackName":
		return "facefleet"
	case "AWS::Partition":
		return "aws"
	case "AWS::AccountId":
		return "123456789012"
	case "ArtifactsBucket":
		return "facefleet-artifactsbucket-abc123"
	}
	if p, ok := at(tpl, "Parameters", name).(map[string]any); ok {
		if d, ok := p["Default"]; ok {
			return fmt.Sprint(d)
		}
		t.Fatalf("parameter %s has no default", name)
	}
	if res, _, _ := strings.Cut(name, "."); at(tpl, "Resources", res) != nil { // ${R} or ${R.Attr}
		return "res-" + strings.ReplaceAll(name, ".", "-")
	}
	t.Fatalf("${%s} does not resolve", name)
	return ""
}

// userData renders a launch template's user data as the instance receives it.
func userData(t *testing.T, tpl map[string]any, lt string) string {
	t.Helper()
	sub, _ := at(resource(t, tpl, lt, "AWS::EC2::LaunchTemplate"), "LaunchTemplateData", "UserData", "Fn::Base64", "Fn::Sub").([]any)
	if len(sub) != 2 {
		t.Fatalf("%s user data is not a !Sub [text, vars]", lt)
	}
	text, _ := sub[0].(string)
	vars := map[string]string{}
	m, _ := sub[1].(map[string]any)
	for k, v := range m {
		vars[k] = eval(t, tpl, v)
	}
	text = regexp.MustCompile(`\$\{!([^}]*)\}`).ReplaceAllString(text, "\x00$1\x01")
	text = subVar.ReplaceAllStringFunc(text, func(s string) string {
		name := s[2 : len(s)-1]
		if v, ok := vars[name]; ok {
			return v
		}
		return subValue(t, tpl, name)
	})
	return strings.NewReplacer("\x00", "${", "\x01", "}").Replace(text)
}

// heredoc is one `cat > PATH <<'TAG'` ... `TAG` block of a script.
type heredoc struct{ target, body string }

var heredocStart = regexp.MustCompile(`^cat > (\S+) <<'(\w+)'$`)

func heredocs(t *testing.T, script string) []heredoc {
	t.Helper()
	var out []heredoc
	lines := strings.Split(script, "\n")
	for i := 0; i < len(lines); i++ {
		m := heredocStart.FindStringSubmatch(lines[i])
		if m == nil {
			if strings.Contains(lines[i], "<<") {
				t.Fatalf("line %d: %q: heredocs must be `cat > PATH <<'TAG'` (quoted, so the shell expands nothing)", i+1, lines[i])
			}
			continue
		}
		end := -1
		for j := i + 1; j < len(lines); j++ {
			if lines[j] == m[2] {
				end = j
				break
			}
		}
		if end < 0 {
			t.Fatalf("heredoc %s for %s is not closed", m[2], m[1])
		}
		out = append(out, heredoc{target: m[1], body: strings.Join(lines[i+1:end], "\n") + "\n"})
		i = end
	}
	return out
}

var bootTemplates = []string{"AppLaunchTemplate", "WebLaunchTemplate"}

// TestBootScriptsShellcheck runs shellcheck on the rendered user data, on every
// script it writes and on the deploy scripts.
func TestBootScriptsShellcheck(t *testing.T) {
	sc := testenv.Tool(t, "shellcheck", "apt-get install shellcheck (scripts/deps.sh installs it when run as root)")
	tpl := readTemplate(t)
	check := func(name, script string) {
		cmd := exec.Command(sc, "--shell=bash", "--severity=style", "-")
		cmd.Stdin = strings.NewReader(script)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("shellcheck %s: %v\n%s", name, err, out)
		}
	}
	for _, lt := range bootTemplates {
		ud := userData(t, tpl, lt)
		check(lt+" user data", ud)
		scripts := 0
		for _, h := range heredocs(t, ud) {
			if strings.HasPrefix(h.body, "#!") {
				scripts++
				check(lt+" "+h.target, h.body)
			}
		}
		if scripts == 0 {
			t.Errorf("%s user data writes no script; the artefact sync script is missing", lt)
		}
	}
	deploy, err := filepath.Glob(filepath.Join(root(), "deploy", "*.sh"))
	if err != nil || len(deploy) == 0 {
		t.Fatalf("no deploy/*.sh: %v", err)
	}
	for _, p := range deploy {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		check(filepath.Base(p), string(b))
	}
}

// unitSections parses a unit file into section -> key -> values.
func unitSections(body string) map[string]map[string][]string {
	out := map[string]map[string][]string{}
	sec := ""
	for _, l := range strings.Split(body, "\n") {
		l = strings.TrimSpace(l)
		switch {
		case l == "" || strings.HasPrefix(l, "#"):
		case strings.HasPrefix(l, "[") && strings.HasSuffix(l, "]"):
			sec = l[1 : len(l)-1]
			if out[sec] == nil {
				out[sec] = map[string][]string{}
			}
		default:
			if k, v, ok := strings.Cut(l, "="); ok && sec != "" {
				out[sec][k] = append(out[sec][k], v)
			}
		}
	}
	return out
}

func units(t *testing.T, ud string) []heredoc {
	var out []heredoc
	for _, h := range heredocs(t, ud) {
		if strings.HasPrefix(h.target, "/etc/systemd/system/") {
			out = append(out, h)
		}
	}
	return out
}

// TestBootUnitsVerify runs systemd-analyze verify on every unit the user data
// writes, in a root holding this machine's system units and the executables
// the dry run showed the boot puts in place: no warning of any kind passes.
func TestBootUnitsVerify(t *testing.T) {
	sa := testenv.Tool(t, "systemd-analyze", "apt-get install systemd")
	sysUnits := ""
	for _, d := range []string{"/usr/lib/systemd/system", "/lib/systemd/system"} {
		if _, err := os.Stat(filepath.Join(d, "multi-user.target")); err == nil {
			sysUnits = d
			break
		}
	}
	if sysUnits == "" {
		testenv.Missing(t, "no system unit directory with multi-user.target")
	}
	tpl := readTemplate(t)
	for _, lt := range bootTemplates {
		t.Run(lt, func(t *testing.T) {
			ud := userData(t, tpl, lt)
			us := units(t, ud)
			if len(us) == 0 {
				t.Fatal("the user data writes no systemd unit")
			}
			// The dry run installs the files the units execute.
			boot := dryRun(t, ud, nil)
			if boot.err != nil {
				t.Fatalf("dry run of the user data failed: %v\n%s", boot.err, boot.out)
			}
			syncUnit(t, boot, us[0], nil, true)
			vroot := t.TempDir()
			if out, err := exec.Command("cp", "-a", sysUnits, filepath.Join(vroot, "sys")).CombinedOutput(); err != nil {
				t.Fatalf("copy %s: %v\n%s", sysUnits, err, out)
			}
			for _, d := range []string{"usr/lib/systemd", "etc/systemd/system"} {
				if err := os.MkdirAll(filepath.Join(vroot, d), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.Rename(filepath.Join(vroot, "sys"), filepath.Join(vroot, "usr/lib/systemd/system")); err != nil {
				t.Fatal(err)
			}
			for _, u := range us {
				name := filepath.Base(u.target)
				if err := os.WriteFile(filepath.Join(vroot, "etc/systemd/system", name), []byte(u.body), 0o644); err != nil {
					t.Fatal(err)
				}
				for key, vals := range unitSections(u.body)["Service"] {
					if !strings.HasPrefix(key, "Exec") {
						continue
					}
					for _, v := range vals {
						exe := strings.Fields(strings.TrimLeft(v, "+-@!:"))[0]
						st, err := os.Stat(boot.path(exe))
						if err != nil || st.Mode()&0o111 == 0 {
							t.Errorf("%s %s=%s: the boot leaves no executable %s (%v)", name, key, v, exe, err)
							continue
						}
						dst := filepath.Join(vroot, exe)
						if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
							t.Fatal(err)
						}
						if err := os.WriteFile(dst, []byte("#!/bin/sh\n"), 0o755); err != nil {
							t.Fatal(err)
						}
					}
				}
				out, err := exec.Command(sa, "verify", "--root="+vroot, name).CombinedOutput()
				if err != nil || len(strings.TrimSpace(string(out))) > 0 {
					t.Errorf("systemd-analyze verify %s: %v\n%s\n--- unit:\n%s", name, err, out, u.body)
				}
			}
		})
	}
}

// TestBootUnitsPowerOff reads the units for what systemd-analyze cannot judge:
// a worker that exits or fails powers its instance off; the web tier retries.
func TestBootUnitsPowerOff(t *testing.T) {
	tpl := readTemplate(t)
	app := units(t, userData(t, tpl, "AppLaunchTemplate"))
	web := units(t, userData(t, tpl, "WebLaunchTemplate"))
	if len(app) != 1 || len(web) != 1 {
		t.Fatalf("want one unit per tier, have %d app and %d web", len(app), len(web))
	}
	a, w := unitSections(app[0].body), unitSections(web[0].body)
	eq(t, "worker SuccessAction", a["Unit"]["SuccessAction"], []string{"poweroff"})
	eq(t, "worker FailureAction", a["Unit"]["FailureAction"], []string{"poweroff"})
	if a["Unit"]["StartLimitBurst"] == nil || a["Unit"]["StartLimitIntervalSec"] == nil {
		t.Error("worker unit has no start limit")
	}
	// systemd 252 runs FailureAction= on entering the failed state, before any
	// automatic restart: Restart= would never get to restart.
	if r := a["Service"]["Restart"]; r != nil && r[0] != "no" {
		t.Errorf("worker Restart=%v together with FailureAction=poweroff", r)
	}
	for _, sec := range []map[string][]string{a["Service"], w["Service"]} {
		for _, k := range []string{"SuccessAction", "FailureAction", "StartLimitBurst", "StartLimitIntervalSec"} {
			if sec[k] != nil {
				t.Errorf("%s= in [Service]: systemd ignores it there", k)
			}
		}
	}
	eq(t, "worker ExecStartPre syncs", strings.Fields(a["Service"]["ExecStartPre"][0])[0], "+/opt/facefleet/bin/facefleet-sync")
	eq(t, "web ExecStartPre syncs", strings.Fields(w["Service"]["ExecStartPre"][0])[0], "+/opt/facefleet/bin/facefleet-sync")
	eq(t, "web Restart", w["Service"]["Restart"], []string{"always"})
	eq(t, "web start limit", w["Unit"]["StartLimitIntervalSec"], []string{"0"})
	if w["Unit"]["FailureAction"] != nil {
		t.Error("the web instance powers off on failure: nothing would start it again")
	}
}

// ---------------------------------------------------------------- dry run

// stubs are the commands the dry run replaces. Each logs "name args" to
// $STUB_LOG. aws serves the artefacts as described in the package comment;
// STUB_FAIL names a command that fails; STUB_HEAD_MISSING (a count, or "all")
// and STUB_CP_FAIL (a count, or "all") make the first N head-object / s3 cp
// calls fail.
var stubs = map[string]string{
	"aws": `n() { local f="$STUB_DIR/count.$1"; local c; c=$(( $(cat "$f" 2>/dev/null || echo 0) + 1 )); echo "$c" > "$f"; echo "$c"; }
fails() { [ "$1" = all ] || [ "$2" -le "${1:-0}" ]; }
case "$1 $2" in
"s3api head-object")
  c=$(n head); if fails "${STUB_HEAD_MISSING:-0}" "$c"; then echo "An error occurred (404) when calling the HeadObject operation: Not Found" >&2; exit 254; fi
  echo '{"ContentLength": 1}' ;;
"s3 cp")
  c=$(n cp); if fails "${STUB_CP_FAIL:-0}" "$c"; then echo "download failed: $5: Connection reset" >&2; exit 1; fi
  src=${4#s3://}; printf 'artefact %s\n' "$src" > "$5" ;;
"s3 sync")
  mkdir -p "$6"; printf 'model\n' > "$6/model.onnx" ;;
*) echo "aws stub: unexpected call: $*" >&2; exit 2 ;;
esac`,
	"systemctl": `:`,
	"useradd":   `:`,
	"poweroff":  `:`,
	"sleep":     `:`,
	"id":        `exit 1`, // the facefleet user does not exist yet
	// install -o/-g need root; the directories are what matters.
	"install": `args=(); while [ $# -gt 0 ]; do case "$1" in -o|-g) shift 2 ;; *) args+=("$1"); shift ;; esac; done; exec /usr/bin/install "${args[@]}"`,
}

// boot is one dry run: the temporary root and the calls made.
type boot struct {
	root, stubDir, log string
	out                string
	err                error
}

// the absolute paths the boot writes, relocated into the dry run's root.
var bootPrefixes = []string{"/opt/facefleet", "/etc/facefleet", "/etc/systemd/system"}

func (b *boot) path(p string) string { return filepath.Join(b.root, p) }

func (b *boot) relocate(s string) string {
	for _, p := range bootPrefixes {
		s = strings.ReplaceAll(s, p, b.root+p)
	}
	return s
}

// calls is the logged calls, in order.
func (b *boot) calls(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile(b.log)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	calls := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	for i, c := range calls {
		calls[i] = strings.TrimSpace(c)
	}
	return calls
}

func newBoot(t *testing.T) *boot {
	t.Helper()
	if _, err := exec.LookPath("bash"); err != nil {
		testenv.Missing(t, "bash not found: %v", err) // part of the base system, so not skipped under -short
	}
	dir := t.TempDir()
	b := &boot{root: filepath.Join(dir, "root"), stubDir: filepath.Join(dir, "stubs"), log: filepath.Join(dir, "calls.log")}
	for _, d := range []string{b.stubDir, b.path("/etc/systemd/system")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, body := range stubs {
		script := "#!/bin/bash\nprintf '%s\\n' \"" + name + " $*\" >> \"$STUB_LOG\"\n" +
			"if [ \"${STUB_FAIL:-}\" = " + name + " ]; then echo \"" + name + ": stub failure\" >&2; exit 1; fi\n" + body + "\n"
		if err := os.WriteFile(filepath.Join(b.stubDir, name), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

func (b *boot) run(t *testing.T, env []string, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append([]string{"PATH=" + b.stubDir + ":/usr/bin:/bin", "STUB_LOG=" + b.log, "STUB_DIR=" + b.stubDir, "LANG=C"}, env...)
	out, err := cmd.CombinedOutput()
	b.out, b.err = string(out), err
}

// dryRun executes user data ud in a new temporary root.
func dryRun(t *testing.T, ud string, env []string) *boot {
	t.Helper()
	b := newBoot(t)
	script := b.relocate(ud)
	// Every file the boot writes must be under the relocated prefixes.
	for _, m := range regexp.MustCompile(`>>? *(/[^\s;|&)]+)`).FindAllStringSubmatch(script, -1) {
		if m[1] != "/dev/null" && !strings.HasPrefix(m[1], b.root) {
			t.Fatalf("the user data writes %s, outside %v: add the prefix to bootPrefixes", m[1], bootPrefixes)
		}
	}
	p := filepath.Join(filepath.Dir(b.root), "user-data")
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	b.run(t, env, "bash", p)
	return b
}

// syncUnit runs the ExecStartPre of unit u (the artefact sync) in b's root, as
// systemd would before starting it.
func syncUnit(t *testing.T, b *boot, u heredoc, env []string, mustPass bool) {
	t.Helper()
	pre := unitSections(u.body)["Service"]["ExecStartPre"]
	if len(pre) != 1 {
		t.Fatalf("%s: want one ExecStartPre, have %v", u.target, pre)
	}
	args := strings.Fields(strings.TrimLeft(pre[0], "+-@!:"))
	b.run(t, env, b.path(args[0]), args[1:]...)
	if mustPass && b.err != nil {
		t.Fatalf("%s: %v\n%s", pre[0], b.err, b.out)
	}
}

// index returns the position of the first call with prefix p, -1 if none.
func index(calls []string, p string) int {
	for i, c := range calls {
		if strings.HasPrefix(c, p) {
			return i
		}
	}
	return -1
}

func count(calls []string, p string) int {
	n := 0
	for _, c := range calls {
		if strings.HasPrefix(c, p) {
			n++
		}
	}
	return n
}

func mode(t *testing.T, p string) os.FileMode {
	t.Helper()
	st, err := os.Stat(p)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return st.Mode().Perm()
}

// inOrder fails unless each prefix is called, after the one before it.
func inOrder(t *testing.T, calls []string, prefixes ...string) {
	t.Helper()
	last := -1
	for _, p := range prefixes {
		i := -1
		for j := last + 1; j < len(calls); j++ {
			if strings.HasPrefix(calls[j], p) {
				i = j
				break
			}
		}
		if i < 0 {
			t.Fatalf("no %q after call %d; calls:\n  %s", p, last, strings.Join(calls, "\n  "))
		}
		last = i
	}
}

func TestUserDataDryRun(t *testing.T) {
	tpl := readTemplate(t)
	for _, c := range []struct {
		lt, unit string
		dirs     []string
		powerOff bool // on a failed boot
	}{
		{"AppLaunchTemplate", "facefleet-worker.service", []string{"/opt/facefleet/bin", "/opt/facefleet/lib", "/opt/facefleet/models"}, true},
		{"WebLaunchTemplate", "facefleet-web.service", []string{"/opt/facefleet/bin"}, false},
	} {
		t.Run(c.lt, func(t *testing.T) {
			ud := userData(t, tpl, c.lt)
			b := dryRun(t, ud, nil)
			if b.err != nil {
				t.Fatalf("user data: %v\n%s", b.err, b.out)
			}
			calls := b.calls(t)
			inOrder(t, calls, "useradd --system", "install -d", "systemctl daemon-reload",
				"systemctl enable "+c.unit, "systemctl start --no-block "+c.unit)
			if i := index(calls, "poweroff"); i >= 0 {
				t.Errorf("a good boot powered off: %v", calls)
			}
			if i := index(calls, "aws"); i >= 0 {
				t.Errorf("the user data downloads itself (%s); the unit's ExecStartPre must, at every start", calls[i])
			}
			for _, d := range c.dirs {
				if st, err := os.Stat(b.path(d)); err != nil || !st.IsDir() {
					t.Errorf("no directory %s: %v", d, err)
				}
			}
			if m := mode(t, b.path("/opt/facefleet/bin/facefleet-sync")); m != 0o755 {
				t.Errorf("facefleet-sync mode %v", m)
			}
			if _, err := os.Stat(b.path("/etc/systemd/system/" + c.unit)); err != nil {
				t.Error(err)
			}
			if c.lt == "AppLaunchTemplate" {
				env, err := os.ReadFile(b.path("/etc/facefleet/worker.env"))
				if err != nil || !regexp.MustCompile(`(?m)^FACEFLEET_WORKERS=[1-9][0-9]*$`).Match(env) {
					t.Errorf("worker.env lacks FACEFLEET_WORKERS=<nproc>: %v\n%s", err, env)
				}
			}
			// A failing step: the app instance powers off; the web one stays up
			// for inspection (its unit retries on its own).
			for _, fail := range []string{"useradd", "systemctl"} {
				b := dryRun(t, ud, []string{"STUB_FAIL=" + fail})
				if b.err == nil {
					t.Errorf("%s failing: the user data succeeded", fail)
				}
				calls := b.calls(t)
				off := len(calls) > 0 && calls[len(calls)-1] == "poweroff"
				if off != c.powerOff {
					t.Errorf("%s failing: powered off %v, want %v; calls %v", fail, off, c.powerOff, calls)
				}
			}
		})
	}
}

func TestArtefactSyncDryRun(t *testing.T) {
	if testing.Short() {
		t.Skip("ten dry runs of the sync script (tens of seconds on a busy machine); skipped with -short")
	}
	tpl := readTemplate(t)
	prefix := subValue(t, tpl, "ArtifactsPrefix")
	bin := "s3://facefleet-artifactsbucket-abc123/" + prefix + "bin/facefleet-linux-amd64"
	lib := "s3://facefleet-artifactsbucket-abc123/" + prefix + "lib/linux-amd64/libonnxruntime.so.1"
	models := "s3://facefleet-artifactsbucket-abc123/" + prefix + "models/"
	for _, lt := range bootTemplates {
		app := lt == "AppLaunchTemplate"
		ud := userData(t, tpl, lt)
		unit := units(t, ud)[0]
		fresh := func(t *testing.T) *boot {
			b := dryRun(t, ud, nil)
			if b.err != nil {
				t.Fatalf("user data: %v\n%s", b.err, b.out)
			}
			if err := os.Truncate(b.log, 0); err != nil {
				t.Fatal(err)
			}
			return b
		}
		t.Run(lt+"/order", func(t *testing.T) {
			b := fresh(t)
			syncUnit(t, b, unit, nil, true)
			calls := b.calls(t)
			if app {
				// The binary last: it is what the upload writes last and what the
				// unit runs, so it lands only when the rest has.
				inOrder(t, calls, "aws s3api head-object", "aws s3 cp --only-show-errors "+lib, "aws s3 sync --only-show-errors --delete "+models, "aws s3 cp --only-show-errors "+bin)
				if got, _ := os.ReadFile(b.path("/opt/facefleet/lib/libonnxruntime.so.1")); !strings.Contains(string(got), strings.TrimPrefix(lib, "s3://")) {
					t.Errorf("library holds %q", got)
				}
				if m := mode(t, b.path("/opt/facefleet/lib/libonnxruntime.so.1")); m != 0o644 {
					t.Errorf("library mode %v", m)
				}
				if _, err := os.Stat(b.path("/opt/facefleet/models/model.onnx")); err != nil {
					t.Error(err)
				}
			} else {
				inOrder(t, calls, "aws s3api head-object", "aws s3 cp --only-show-errors "+bin)
				if count(calls, "aws s3 sync") != 0 || count(calls, "aws s3 cp") != 1 {
					t.Errorf("the web tier fetches more than its binary: %v", calls)
				}
			}
			if idx := index(calls, "aws s3 cp --only-show-errors "+bin); idx != len(calls)-1 {
				t.Errorf("the binary is not the last download: %v", calls)
			}
			if got, _ := os.ReadFile(b.path("/opt/facefleet/bin/facefleet")); !strings.Contains(string(got), strings.TrimPrefix(bin, "s3://")) {
				t.Errorf("binary holds %q", got)
			}
			if m := mode(t, b.path("/opt/facefleet/bin/facefleet")); m != 0o755 {
				t.Errorf("binary mode %v", m)
			}
			// A second start (a pooled instance started again) syncs again.
			syncUnit(t, b, unit, nil, true)
			if n := count(b.calls(t), "aws s3 cp --only-show-errors "+bin); n != 2 {
				t.Errorf("second start fetched the binary %d times in all, want 2", n)
			}
		})
		t.Run(lt+"/retries", func(t *testing.T) {
			b := fresh(t)
			syncUnit(t, b, unit, []string{"STUB_CP_FAIL=2"}, true)
			calls := b.calls(t)
			inOrder(t, calls, "aws s3 cp", "sleep 2", "aws s3 cp", "sleep 4", "aws s3 cp")
		})
		t.Run(lt+"/download-keeps-failing", func(t *testing.T) {
			b := fresh(t)
			syncUnit(t, b, unit, []string{"STUB_CP_FAIL=all"}, false)
			if b.err == nil {
				t.Fatal("sync succeeded with every download failing")
			}
			calls := b.calls(t)
			if n := count(calls, "aws s3 cp"); n != 5 {
				t.Errorf("%d attempts at the first download, want 5", n)
			}
			var slept int
			for _, c := range calls {
				if s, ok := strings.CutPrefix(c, "sleep "); ok {
					n, _ := strconv.Atoi(s)
					slept += n
				}
			}
			if slept != 2+4+8+16 {
				t.Errorf("slept %d s between attempts, want 30", slept)
			}
			if _, err := os.Stat(b.path("/opt/facefleet/bin/facefleet")); err == nil {
				t.Error("a binary was installed although the sync failed")
			}
		})
		t.Run(lt+"/artefacts-never-uploaded", func(t *testing.T) {
			b := fresh(t)
			syncUnit(t, b, unit, []string{"STUB_HEAD_MISSING=all"}, false)
			if b.err == nil {
				t.Fatal("sync succeeded with no binary uploaded")
			}
			pre := strings.Fields(unitSections(unit.body)["Service"]["ExecStartPre"][0])
			limit, err := strconv.Atoi(pre[1])
			if err != nil {
				t.Fatalf("ExecStartPre %v: the wait is not a number of seconds", pre)
			}
			calls := b.calls(t)
			sleeps := count(calls, "sleep 15")
			if sleeps*15 != limit || count(calls, "sleep") != sleeps {
				t.Errorf("waited %d x 15 s for the binary, want %d s in all: %v", sleeps, limit, calls)
			}
			if count(calls, "aws s3 cp") != 0 {
				t.Error("downloaded before the binary was uploaded")
			}
			// The unit must outlast that wait, or systemd kills the sync first.
			to := unitSections(unit.body)["Service"]["TimeoutStartSec"]
			if len(to) != 1 || !strings.HasSuffix(to[0], "min") {
				t.Fatalf("TimeoutStartSec %v, want N min", to)
			}
			mins, _ := strconv.Atoi(strings.TrimSuffix(to[0], "min"))
			if mins*60 < limit+5*30+60 {
				t.Errorf("TimeoutStartSec=%s does not cover the %d s wait plus retries", to[0], limit)
			}
		})
		t.Run(lt+"/uploaded-while-waiting", func(t *testing.T) {
			b := fresh(t)
			syncUnit(t, b, unit, []string{"STUB_HEAD_MISSING=3"}, true)
			if n := count(b.calls(t), "sleep 15"); n != 3 {
				t.Errorf("polled %d times, want 3", n)
			}
		})
	}
}

// TestUploadPutsBinaryLast runs deploy/upload-artifacts.sh with a stub aws.
func TestUploadPutsBinaryLast(t *testing.T) {
	b := newBoot(t)
	dist := filepath.Join(filepath.Dir(b.root), "dist")
	for _, f := range []string{"bin/facefleet-linux-amd64", "lib/linux-amd64/libonnxruntime.so.1", "models/a.onnx"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dist, f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dist, f), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	aws := `case "$1 $2" in
"cloudformation describe-stacks") echo s3://bucket/facefleet/ ;;
"s3 sync"|"s3 cp"|"s3 ls") ;;
*) echo "aws stub: unexpected call: $*" >&2; exit 2 ;;
esac`
	if err := os.WriteFile(filepath.Join(b.stubDir, "aws"), []byte("#!/bin/bash\nprintf '%s\\n' \"aws $*\" >> \"$STUB_LOG\"\n"+aws+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	b.run(t, []string{"DIST=" + dist}, testenv.File(t, "deploy/upload-artifacts.sh"), "mystack")
	if b.err != nil {
		t.Fatalf("%v\n%s", b.err, b.out)
	}
	calls := b.calls(t)
	inOrder(t, calls, "aws cloudformation describe-stacks --stack-name mystack",
		"aws s3 sync --only-show-errors --exclude bin/* "+dist+"/ s3://bucket/facefleet/",
		"aws s3 cp --only-show-errors "+dist+"/bin/facefleet-linux-amd64 s3://bucket/facefleet/bin/facefleet-linux-amd64")
	if n := count(calls, "aws s3 sync"); n != 1 {
		t.Errorf("%d syncs: %v", n, calls)
	}
}

// TestTeardownOrder runs deploy/teardown.sh with a stub aws that plays a stack
// with two app instances and a versioned artefacts bucket holding two batches.
func TestTeardownOrder(t *testing.T) {
	b := newBoot(t)
	aws := `n() { local f="$STUB_DIR/count.$1"; local c; c=$(( $(cat "$f" 2>/dev/null || echo 0) + 1 )); echo "$c" > "$f"; echo "$c"; }
case "$1 $2" in
"cloudformation describe-stacks") echo CREATE_COMPLETE ;;
"cloudformation describe-stack-resource")
  case "$6" in
  ScalerFunction) echo facefleet-ScalerFunction-X ;;
  InputBucket) echo in-bucket ;; OutputBucket) echo out-bucket ;; ArtifactsBucket) echo art-bucket ;;
  *) echo "Resource $6 does not exist for stack" >&2; exit 254 ;;
  esac ;;
"lambda put-function-concurrency") echo '{}' ;;
"lambda get-function-configuration") echo 60 ;;
"ec2 describe-instances") printf 'i-1\ti-2\n' ;;
"ec2 terminate-instances"|"ec2 wait") ;;
"s3 rm") ;;
"s3api list-object-versions")
  if [ "$4" = art-bucket ] && [ "$(n "versions")" -le 2 ]; then echo '{"Objects": [{"Key": "facefleet/bin/x", "VersionId": "v1"}], "Quiet": true}'; else echo '{"Objects": [], "Quiet": true}'; fi ;;
"s3api delete-objects") ;;
"cloudformation delete-stack"|"cloudformation wait") ;;
*) echo "aws stub: unexpected call: $*" >&2; exit 2 ;;
esac`
	if err := os.WriteFile(filepath.Join(b.stubDir, "aws"), []byte("#!/bin/bash\nprintf '%s\\n' \"aws $*\" >> \"$STUB_LOG\"\n"+aws+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	b.run(t, nil, testenv.File(t, "deploy/teardown.sh"), "mystack")
	if b.err != nil {
		t.Fatalf("%v\n%s", b.err, b.out)
	}
	calls := b.calls(t)
	inOrder(t, calls,
		"aws lambda put-function-concurrency --function-name facefleet-ScalerFunction-X --reserved-concurrent-executions 0",
		"sleep 60",
		"aws ec2 describe-instances --filters Name=tag:facefleet-app,Values=mystack",
		"aws ec2 terminate-instances --instance-ids i-1 i-2",
		"aws ec2 wait instance-terminated --instance-ids i-1 i-2",
		"aws s3 rm --recursive --only-show-errors s3://in-bucket",
		"aws s3 rm --recursive --only-show-errors s3://out-bucket",
		"aws s3 rm --recursive --only-show-errors s3://art-bucket",
		"aws s3api delete-objects --bucket art-bucket",
		"aws s3api delete-objects --bucket art-bucket",
		"aws cloudformation delete-stack --stack-name mystack",
		"aws cloudformation wait stack-delete-complete --stack-name mystack")
	if n := count(calls, "aws s3api delete-objects"); n != 2 {
		t.Errorf("%d delete-objects calls, want 2 (two batches of versions)", n)
	}
	if i := index(calls, "aws ec2 run-instances"); i >= 0 {
		t.Error("teardown launched an instance")
	}
}

func root() string { return testenv.Root() }

// TestLocalEnvReadsTheDeployedFunction runs deploy/local-env.sh with a stub aws.
func TestLocalEnvReadsTheDeployedFunction(t *testing.T) {
	b := newBoot(t)
	aws := `case "$1 $2" in
"cloudformation describe-stacks") echo facefleet-ScalerFunction-X ;;
"lambda get-function-configuration") echo '{"ScalerFunction": {"FACEFLEET_APP_TAG_VALUE": "mystack"}}' ;;
*) echo "aws stub: unexpected call: $*" >&2; exit 2 ;;
esac`
	if err := os.WriteFile(filepath.Join(b.stubDir, "aws"), []byte("#!/bin/bash\nprintf '%s\\n' \"aws $*\" >> \"$STUB_LOG\"\n"+aws+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	b.run(t, nil, testenv.File(t, "deploy/local-env.sh"), "mystack")
	if b.err != nil {
		t.Fatalf("%v\n%s", b.err, b.out)
	}
	inOrder(t, b.calls(t),
		"aws cloudformation describe-stacks --stack-name mystack --query Stacks[0].Outputs[?OutputKey=='ScalerFunctionName'].OutputValue",
		"aws lambda get-function-configuration --function-name facefleet-ScalerFunction-X --query {ScalerFunction: Environment.Variables} --output json")
	if !strings.Contains(b.out, `"ScalerFunction"`) {
		t.Errorf("output %q", b.out)
	}
}
