// Package ui_test drives the web tier's page in a real browser (Debian's
// chromium, headless, through the DevTools protocol with chromedp) against the
// embedded service with the real engine: recognize a group photo, enroll from a
// box, remove a face, watch the fleet chart move during a loadgen burst, and ask
// for an API key when the API answers 401. Screenshots of every step go to
// build/ui/.
package ui_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/facefleet/facefleet/engine"
	"github.com/facefleet/facefleet/gallery"
	"github.com/facefleet/facefleet/internal/apikeys"
	"github.com/facefleet/facefleet/internal/service"
	"github.com/facefleet/facefleet/internal/testenv"
	"github.com/facefleet/facefleet/loadgen"
	"github.com/facefleet/facefleet/scaling"
	"github.com/facefleet/facefleet/test/e2ekit"
)

// chromium finds the browser: $FACEFLEET_CHROMIUM, else chromium on PATH. It
// skips the test when absent, or fails it under FACEFLEET_REQUIRE_DEPS=1.
func chromium(t *testing.T) string {
	t.Helper()
	testenv.NoShort(t, "browser tests (make test-ui runs them)")
	p := os.Getenv("FACEFLEET_CHROMIUM")
	if p == "" {
		for _, name := range []string{"chromium", "chromium-browser"} {
			if lp, err := exec.LookPath(name); err == nil {
				p = lp
				break
			}
		}
	}
	if p != "" {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	const hint = "install Debian's chromium (scripts/deps.sh does as root: apt-get install chromium) or set FACEFLEET_CHROMIUM"
	testenv.Missing(t, "chromium not found: %s", hint)
	return ""
}

// startService runs the embedded service with the real engine on 127.0.0.1 and
// answers its URL, the service and an admin API key.
func startService(t *testing.T) (string, *service.Service, string) {
	t.Helper()
	models, lib := testenv.Models(t), testenv.ORTLib(t)
	eng, err := engine.New(engine.Options{ModelDir: models, LibraryPath: lib, IntraOpThreads: 1,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	svc, err := service.New(service.Config{
		DataDir: t.TempDir(), Analyzer: eng, MaxInstances: 2,
		BootDelay: 300 * time.Millisecond, IdleTimeout: 2 * time.Second, ScaleEvery: 200 * time.Millisecond,
		WorkerWait: 200 * time.Millisecond, GalleryCheckEvery: 100 * time.Millisecond,
		Policy: scaling.NewBacklogDrain(scaling.BacklogDrainOptions{DrainTarget: 300 * time.Millisecond}),
		Logger: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	url, _ := e2ekit.Serve(t, svc)
	key, _, err := apikeys.NewStore(svc.Outputs, apikeys.Options{}).Create(context.Background(), apikeys.Admin, "ui test", 1e6, 1e6)
	if err != nil {
		t.Fatal(err)
	}
	return url, svc, key
}

// openWithKey opens the page with key already in the browser's storage (the
// page asks for it otherwise; TestPageAsksForKey checks that).
func (p *page) openWithKey(base, key string) {
	p.t.Helper()
	k, _ := json.Marshal(key)
	p.run("open the page with the key stored", chromedp.Navigate(base+"/"), chromedp.WaitVisible(`#drop`, chromedp.ByQuery),
		chromedp.Evaluate(`localStorage.setItem('facefleet.apiKey', `+string(k)+`)`, nil), chromedp.Reload(), chromedp.WaitVisible(`#drop`, chromedp.ByQuery))
}

// browser starts a fresh headless chromium with a width x height window.
func browser(t *testing.T, width, height int) context.Context {
	t.Helper()
	// Not t.TempDir: chromium's helper processes may still write to the profile
	// for a moment after the browser exits, so removal is retried.
	profile, err := os.MkdirTemp("", "facefleet-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for range 50 {
			if os.RemoveAll(profile) == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Logf("could not remove the browser profile %s", profile)
	})
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium(t)),
		chromedp.Flag("headless", true), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true), chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("hide-scrollbars", true),
		chromedp.UserDataDir(profile), chromedp.WindowSize(width, height),
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	// chromedp logs DevTools events it has no handler for (newer Chromium
	// versions send some); only other errors are worth a line.
	ctx, cancelB := chromedp.NewContext(actx, chromedp.WithErrorf(func(format string, a ...any) {
		if !strings.HasPrefix(format, "unhandled") {
			log.Printf("chromedp: "+format, a...)
		}
	}))
	t.Cleanup(func() { cancelB(); cancelA() })
	if err := chromedp.Run(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

type page struct {
	t    *testing.T
	ctx  context.Context
	dir  string
	step int
}

func (p *page) run(what string, actions ...chromedp.Action) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Run(ctx, actions...); err != nil {
		p.shot("failed")
		p.t.Fatalf("%s: %v", what, err)
	}
}

// wait polls a JavaScript expression until it is truthy.
func (p *page) wait(what, expr string, timeout time.Duration) {
	p.t.Helper()
	var ok bool
	ctx, cancel := context.WithTimeout(p.ctx, timeout+5*time.Second)
	defer cancel()
	if err := chromedp.Run(ctx, chromedp.Poll(expr, &ok, chromedp.WithPollingTimeout(timeout), chromedp.WithPollingInterval(100*time.Millisecond))); err != nil {
		var errs string
		_ = chromedp.Run(p.ctx, chromedp.Evaluate(`[...document.querySelectorAll('.error,[role=alert],#people-status,#fleet-status')].map(e => e.textContent).filter(Boolean).join(' | ')`, &errs))
		p.shot("failed")
		p.t.Fatalf("waiting for %s (%s): %v; errors on the page: %q", what, expr, err, errs)
	}
}

func (p *page) eval(expr string, out any) {
	p.t.Helper()
	p.run("evaluate "+expr, chromedp.Evaluate(expr, out))
}

// shot saves a full-page PNG as build/ui/NN-name.png.
func (p *page) shot(name string) {
	var png []byte
	ctx, cancel := context.WithTimeout(p.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Run(ctx, chromedp.FullScreenshot(&png, 100)); err != nil {
		p.t.Logf("screenshot %s: %v", name, err)
		return
	}
	p.step++
	f := filepath.Join(p.dir, fmt.Sprintf("%02d-%s.png", p.step, name))
	if err := os.WriteFile(f, png, 0o644); err != nil {
		p.t.Errorf("save screenshot: %v", err)
	}
}

func screenshotDir(t *testing.T, sub string) string {
	dir := filepath.Join(testenv.Root(), "build", "ui", sub)
	_ = os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func getJSON(t *testing.T, u, key string, out any) {
	t.Helper()
	req, err := http.NewRequest("GET", u, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		b, _ := io.ReadAll(res.Body)
		t.Fatalf("GET %s: %d %s", u, res.StatusCode, b)
	}
	if err := json.NewDecoder(res.Body).Decode(out); err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
}

// TestPage is the whole story in one browser, step by step.
func TestPage(t *testing.T) {
	chromium(t)
	groups := testenv.Shared(t, "groups")
	faces := testenv.Shared(t, "faces")
	photo := filepath.Join(groups, "bbt1.jpg")
	if _, err := os.Stat(photo); err != nil {
		t.Skipf("skipping: %s is absent", photo)
	}
	base, _, key := startService(t)
	p := &page{t: t, ctx: browser(t, 1280, 900), dir: screenshotDir(t, "desktop")}

	// 1. The page, empty.
	p.openWithKey(base, key)
	p.shot("empty")

	// 2. Upload a group photo: a box and a name on every face.
	p.run("pick the group photo", chromedp.SetUploadFiles(`#files`, []string{photo}, chromedp.ByQuery))
	p.wait("the faces to be drawn", `document.querySelectorAll('#results .face').length > 0 && !document.querySelector('#results .answer.busy')`, 90*time.Second)
	var drawn struct {
		Faces, Labels, Unknown, Buttons int
		Answer, Timings                 string
	}
	p.eval(`(() => { const c = document.querySelector('#results .photo'); return {
		faces: c.querySelectorAll('g.face rect').length,
		labels: [...c.querySelectorAll('g.face text')].filter(t => /\S+ \d\.\d\d$|Unknown/.test(t.textContent)).length,
		unknown: [...c.querySelectorAll('g.face')].filter(g => g.dataset.name === 'Unknown').length,
		buttons: c.querySelectorAll('.faces button').length,
		answer: c.querySelector('.answer code').textContent, timings: c.querySelector('.timings').textContent }; })()`, &drawn)
	if drawn.Faces < 3 || drawn.Labels != drawn.Faces || drawn.Unknown != drawn.Faces || drawn.Buttons != drawn.Faces {
		t.Fatalf("group photo: %+v; want >= 3 boxes, each labelled Unknown with a distance, and a button per face", drawn)
	}
	if drawn.Answer != "bbt1:Unknown" || !strings.Contains(drawn.Timings, "inference") {
		t.Fatalf("course answer %q (want bbt1:Unknown), timings %q", drawn.Answer, drawn.Timings)
	}
	t.Logf("group photo: %d faces drawn; %s", drawn.Faces, drawn.Timings)
	p.shot("recognized")

	// 3. Enroll from a box: click face 1, type a name; the photo is redrawn with it.
	p.run("click face 1", chromedp.Click(`#results g.face[data-index="0"]`, chromedp.ByQuery), chromedp.WaitVisible(`#enroll-dialog`, chromedp.ByQuery))
	p.wait("the face crop", `document.querySelector('#enroll-preview').src.startsWith('blob:')`, 10*time.Second)
	p.run("type a name", chromedp.SendKeys(`#enroll-name`, "Sheldon", chromedp.ByQuery))
	p.shot("enroll-dialog")
	p.run("enroll", chromedp.Click(`#enroll-submit`, chromedp.ByQuery))
	p.wait("the face to be named Sheldon", `!document.querySelector('#enroll-dialog').open &&
		document.querySelector('#results g.face[data-index="0"]')?.dataset.name === 'Sheldon'`, 90*time.Second)
	var named int
	p.eval(`document.querySelectorAll('#results g.face.known').length`, &named)
	if named != 1 {
		t.Fatalf("%d faces named after enrolling one", named)
	}
	p.shot("enrolled")

	// 4. Enroll a second face under the same name: the page asks first.
	p.run("click face 2", chromedp.Click(`#results g.face[data-index="1"]`, chromedp.ByQuery), chromedp.WaitVisible(`#enroll-dialog`, chromedp.ByQuery))
	p.wait("the face crop", `document.querySelector('#enroll-preview').src.startsWith('blob:')`, 10*time.Second)
	var title string
	p.eval(`document.querySelector('#enroll-title').textContent`, &title)
	if title != "Enroll face 2 of bbt1.jpg" {
		t.Fatalf("clicking face 2 opened %q", title)
	}
	p.run("type the same name", chromedp.SendKeys(`#enroll-name`, "Sheldon", chromedp.ByQuery), chromedp.Click(`#enroll-submit`, chromedp.ByQuery))
	p.wait("the question", `!document.querySelector('#enroll-confirm').hidden`, 20*time.Second)
	var question string
	p.eval(`document.querySelector('#enroll-confirm').textContent`, &question)
	if !strings.Contains(question, "already enrolled with 1 face") {
		t.Fatalf("confirmation %q", question)
	}
	p.shot("existing-name-asks")
	p.run("add to Sheldon", chromedp.Click(`#enroll-submit`, chromedp.ByQuery))
	p.wait("the dialog to close", `!document.querySelector('#enroll-dialog').open`, 90*time.Second)
	var subs struct {
		Subjects []struct {
			Name  string
			Faces int
		}
	}
	getJSON(t, base+"/v1/subjects", key, &subs)
	if len(subs.Subjects) != 1 || subs.Subjects[0].Name != "Sheldon" || subs.Subjects[0].Faces != 2 {
		t.Fatalf("subjects after two enrollments: %+v", subs)
	}

	// 5. People: Sheldon with two thumbnails; remove one face.
	p.run("open People", chromedp.Click(`#tab-people`, chromedp.ByQuery))
	p.wait("two thumbnails", `document.querySelectorAll('#people-list li.person[data-name="Sheldon"] .thumbs img[src^="blob:"]').length === 2`, 20*time.Second)
	var thumbOK bool
	p.wait("thumbnails to load", `[...document.querySelectorAll('.thumbs img')].every(i => i.complete && i.naturalWidth === 96)`, 10*time.Second)
	p.eval(`document.querySelector('.person .count').textContent === '2 faces'`, &thumbOK)
	if !thumbOK {
		t.Fatal("the face count does not say 2 faces")
	}
	p.shot("people")
	p.run("remove face 1", chromedp.Click(`.thumbs li:first-child button`, chromedp.ByQuery), chromedp.WaitVisible(`#confirm-dialog`, chromedp.ByQuery))
	p.shot("remove-face-asks")
	p.run("confirm", chromedp.Click(`#confirm-yes`, chromedp.ByQuery))
	p.wait("one face left", `document.querySelectorAll('.thumbs li').length === 1 && document.querySelector('.person .count').textContent === '1 face'`, 20*time.Second)
	var left struct{ Faces []struct{ ID string } }
	getJSON(t, base+"/v1/subjects/Sheldon/faces", key, &left)
	if len(left.Faces) != 1 {
		t.Fatalf("faces after removing one: %+v", left)
	}
	p.shot("face-removed")
	// Search filters the list.
	p.run("search", chromedp.SendKeys(`#search`, "nobody", chromedp.ByQuery))
	p.wait("no match", `document.querySelectorAll('#people-list li.person').length === 0 && /0 of 1/.test(document.querySelector('#people-status').textContent)`, 10*time.Second)

	// 6. Fleet: the chart moves while a loadgen burst runs.
	p.run("open Fleet", chromedp.Click(`#tab-fleet`, chromedp.ByQuery))
	p.wait("the first samples", `+document.querySelector('#chart').dataset.samples >= 2`, 20*time.Second)
	var before string
	var peakBefore int
	p.eval(`document.querySelector('#line-visible').getAttribute('d')`, &before)
	p.eval(`+document.querySelector('#chart').dataset.peak`, &peakBefore)
	if peakBefore >= 5 {
		t.Fatalf("%d requests queued or in flight at once before the burst (enrollments send one at a time)", peakBefore)
	}
	p.shot("fleet-idle")
	imgs, err := loadgen.LoadImages(faces, "")
	if err != nil {
		t.Fatal(err)
	}
	for i := range imgs {
		imgs[i].Expected = "" // only Sheldon is enrolled: answers are not checked here
	}
	var burst sync.WaitGroup
	var sum *loadgen.Summary
	var burstErr error
	burstCtx, stopBurst := context.WithCancel(context.Background())
	t.Cleanup(func() { stopBurst(); burst.Wait() }) // before the service stops
	burst.Go(func() {
		sum, burstErr = loadgen.Run(burstCtx, loadgen.Options{URL: base + "/", Images: imgs, N: 120, Concurrency: 24, Timeout: time.Minute})
	})
	beforeJS, _ := json.Marshal(before)
	p.wait("the chart to show the burst", `document.querySelector('#line-visible').getAttribute('d') !== `+string(beforeJS)+
		` && +document.querySelector('#chart').dataset.peak >= 5 && +document.querySelector('#t-running').textContent >= 1`, 60*time.Second)
	p.shot("fleet-burst")
	burst.Wait()
	if burstErr != nil || sum.Failed != 0 {
		t.Fatalf("burst: %+v %v", sum, burstErr)
	}
	t.Logf("burst: %d uploads, %.1f/s, p95 %.0f ms", sum.Total, sum.PerSecond, sum.P95MS)
	p.wait("a scaling decision with its reason", `[...document.querySelectorAll('#decisions li')].some(li => /start \d/.test(li.textContent))`, 20*time.Second)
	p.shot("fleet-after")
}

// TestPageNarrowAndKeyboard checks the page at 375 px wide (nothing wider than
// the screen) and that a photo can be recognized and a face enrolled with the
// keyboard alone.
func TestPageNarrowAndKeyboard(t *testing.T) {
	chromium(t)
	groups := testenv.Shared(t, "groups")
	photos := []string{filepath.Join(groups, "bbt2.jpg"), filepath.Join(groups, "bbt3.jpg")}
	for _, photo := range photos {
		if _, err := os.Stat(photo); err != nil {
			t.Skipf("skipping: %s is absent", photo)
		}
	}
	base, svc, key := startService(t)
	p := &page{t: t, ctx: browser(t, 375, 800), dir: screenshotDir(t, "narrow")}
	// Chromium's window is at least 500 px wide; the viewport is emulated.
	p.run("narrow the viewport", chromedp.EmulateViewport(375, 800))
	p.openWithKey(base, key)
	p.run("pick two photos", chromedp.SetUploadFiles(`#files`, photos, chromedp.ByQuery))
	p.wait("the faces of both", `[...document.querySelectorAll('#results .photo')].filter(c => c.querySelector('.face') && !c.querySelector('.answer.busy')).length === 2`, 90*time.Second)
	p.shot("recognized")
	var wide int
	p.eval(`document.documentElement.scrollWidth`, &wide)
	if wide > 375 {
		t.Fatalf("the page is %d px wide at 375 px", wide)
	}
	// Keyboard only: focus the first face box, Enter opens the dialog, type, Enter enrolls.
	p.run("focus face 1", chromedp.Focus(`#results g.face[data-index="0"]`, chromedp.ByQuery), chromedp.KeyEvent("\r"))
	p.wait("the dialog with the name field focused", `document.querySelector('#enroll-dialog').open && document.activeElement.id === 'enroll-name'`, 10*time.Second)
	p.wait("the face crop", `document.querySelector('#enroll-preview').src.startsWith('blob:')`, 10*time.Second)
	p.run("type and press Enter", chromedp.KeyEvent("Raj"), chromedp.KeyEvent("\r"))
	p.wait("the face named Raj", `document.querySelector('#results g.face[data-index="0"]')?.dataset.name === 'Raj'`, 90*time.Second)
	p.shot("enrolled-by-keyboard")
	// Every control has an accessible name.
	var unnamed []string
	p.eval(`[...document.querySelectorAll('button, input, [role=button], [role=tab]')].filter(e => {
		if (e.closest('[hidden]') || e.closest('dialog:not([open])')) return false;
		const lab = e.getAttribute('aria-label') || e.textContent.trim() || (e.id && document.querySelector('label[for="' + e.id + '"]')?.textContent.trim()) || e.getAttribute('title');
		return !lab; }).map(e => e.outerHTML.slice(0, 80))`, &unnamed)
	if len(unnamed) > 0 {
		t.Fatalf("controls without an accessible name: %q", unnamed)
	}
	// Errors are words: a file that is not an image.
	junk := filepath.Join(t.TempDir(), "notes.jpg")
	if err := os.WriteFile(junk, []byte("these are not pixels"), 0o644); err != nil {
		t.Fatal(err)
	}
	p.run("pick a non-image", chromedp.SetUploadFiles(`#files`, []string{junk}, chromedp.ByQuery))
	p.wait("the error in words", `/not an image/.test(document.querySelector('#results .photo .error').textContent)`, 20*time.Second)
	p.shot("error-in-words")

	// People pages 8 at a time and searches by name; faces enrolled without the
	// API (a seeded gallery) show "no picture".
	seed := gallery.New()
	for i := range 10 {
		d := make([]float32, gallery.DescriptorLen)
		d[i] = 1
		if err := seed.Add(fmt.Sprintf("p%02d", i), d); err != nil {
			t.Fatal(err)
		}
	}
	data, err := seed.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.SeedGallery(context.Background(), data); err != nil {
		t.Fatal(err)
	}
	p.run("open People", chromedp.Click(`#tab-people`, chromedp.ByQuery))
	p.wait("page 1 of 2", `document.querySelectorAll('#people-list li.person').length === 8 && document.querySelector('#page-info').textContent === 'Page 1 of 2'`, 20*time.Second)
	p.shot("people-page-1")
	p.run("next page", chromedp.Click(`#next-page`, chromedp.ByQuery))
	p.wait("page 2: the last 3 in name order", `[...document.querySelectorAll('#people-list li.person')].map(li => li.dataset.name).join() === 'p07,p08,p09'`, 20*time.Second)
	p.run("search", chromedp.SendKeys(`#search`, "p07", chromedp.ByQuery))
	p.wait("only p07, without a picture", `[...document.querySelectorAll('#people-list li.person')].map(li => li.dataset.name).join() === 'p07' &&
		document.querySelector('#people-list .nopic') !== null && document.querySelector('#page-info').textContent === 'Page 1 of 1'`, 20*time.Second)
	p.shot("people-search")
}

// TestPageAsksForKey: listing people needs an admin key. The page asks once,
// says so in words when a key is refused, keeps the accepted one in
// localStorage and sends it (Authorization: Bearer) across reloads.
func TestPageAsksForKey(t *testing.T) {
	chromium(t)
	base, _, key := startService(t)
	p := &page{t: t, ctx: browser(t, 1024, 768), dir: screenshotDir(t, "key")}
	p.run("open People", chromedp.Navigate(base+"/#people"))
	p.wait("the key question", `document.querySelector('#key-dialog').open`, 20*time.Second)
	p.shot("asks-for-key")
	p.run("wrong key", chromedp.SendKeys(`#key-input`, "ffk_0000000000000000_wrong", chromedp.ByQuery), chromedp.KeyEvent("\r"))
	p.wait("the refusal in words", `document.querySelector('#key-dialog').open && /refused.*not valid/.test(document.querySelector('#key-error').textContent)`, 20*time.Second)
	p.shot("key-refused")
	p.run("right key", chromedp.SendKeys(`#key-input`, key, chromedp.ByQuery), chromedp.KeyEvent("\r"))
	p.wait("the listing", `!document.querySelector('#key-dialog').open && /Nobody is enrolled/.test(document.querySelector('#people-status').textContent)`, 20*time.Second)
	var stored string
	p.eval(`localStorage.getItem('facefleet.apiKey')`, &stored)
	if stored != key {
		t.Fatalf("localStorage holds %q", stored)
	}
	p.run("reload", chromedp.Reload())
	p.wait("the listing without asking", `!document.querySelector('#key-dialog').open && /Nobody is enrolled/.test(document.querySelector('#people-status').textContent)`, 20*time.Second)
	p.shot("key-kept")
}
