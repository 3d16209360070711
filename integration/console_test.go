//go:build integration

package integration

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/ferryhq/ferry/domain"
)

// browser starts a headless Chromium (Debian's chromium, installed by
// scripts/install-test-peers.sh; FERRY_CHROMIUM names another) with a
// fresh profile and returns a chromedp context on a tab of it. The page's
// console messages are logged; an uncaught exception fails the test.
func browser(t *testing.T) context.Context {
	t.Helper()
	bin := os.Getenv("FERRY_CHROMIUM")
	if bin == "" {
		var err error
		if bin, err = exec.LookPath("chromium"); err != nil {
			t.Fatal("chromium is not installed: run scripts/install-test-peers.sh (as root), or name one in FERRY_CHROMIUM")
		}
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(bin),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 1000),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	if err := chromedp.Do(ctx); err != nil {
		cancelTab()
		cancelAlloc()
		t.Fatalf("start %s: %v", bin, err)
	}
	messages := chromedp.Console(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleException {
				t.Errorf("browser: uncaught %s", m.Text)
			} else {
				t.Logf("browser console %s: %s", m.Type, m.Text)
			}
		}
	}()
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc()
		<-done
	})
	return ctx
}

// do runs browser actions with a deadline, failing the test with what was
// being done.
func do(t *testing.T, ctx context.Context, what string, timeout time.Duration, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// get runs one browser action that answers a value.
func get[T any](t *testing.T, ctx context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return v
}

// js evaluates a JavaScript expression in the page.
func js[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	return get(t, ctx, expr, chromedp.Evaluate[T](expr))
}

// screenshot saves the page as .cache/screenshots/TEST-NAME.png
// (git-ignored) and logs where.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png := get(t, ctx, "screenshot "+name, chromedp.FullScreenshot(100))
	dir, err := filepath.Abs(filepath.Join("..", ".cache", "screenshots"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, strings.ReplaceAll(t.Name(), "/", "-")+"-"+name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}

// TestConsole drives the web console in Chromium: it signs in with an
// operator's key (by keyboard), finds a transfer in the history by its
// sender, watches a six-chunk transfer's timeline advance over the
// WebSocket while it is sent (the progress bar rising to 6 of 6, then
// Delivered), and replays a failed transfer with a reason given in the
// replay dialog, the Replayed event then appearing in its timeline.
func TestConsole(t *testing.T) {
	stack.mu.Lock()
	consoleURL := stack.local.console
	stack.mu.Unlock()
	if consoleURL == "" {
		t.Fatal("ferry local's ready line names no console")
	}
	opsParty, sender := uniq("console-ops"), uniq("console-a")
	key := apiKey(t, opsParty, "operator")
	ctx := browser(t)
	css := func(sel string) chromedp.CSS { return chromedp.CSS(sel) }

	// The console is of another origin than the API: API Gateway (here
	// emulated, with the template's CorsConfiguration) answers its
	// preflight without the authorizer, and no other origin's.
	t.Run("CORS", func(t *testing.T) {
		stack.mu.Lock()
		api := stack.local.api
		stack.mu.Unlock()
		preflight := func(origin string) *http.Response {
			req, _ := http.NewRequest("OPTIONS", api+"/transfers/01JDXYZ0000000000000000000/replay", nil)
			req.Header.Set("Origin", origin)
			req.Header.Set("Access-Control-Request-Method", "POST")
			req.Header.Set("Access-Control-Request-Headers", "authorization,content-type")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp
		}
		if r := preflight(consoleURL); r.StatusCode != 204 || r.Header.Get("Access-Control-Allow-Origin") != consoleURL ||
			!strings.Contains(r.Header.Get("Access-Control-Allow-Headers"), "authorization") {
			t.Errorf("preflight from the console %s: %d %v", consoleURL, r.StatusCode, r.Header)
		}
		if r := preflight("https://elsewhere.example"); r.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("preflight from another origin allowed: %v", r.Header)
		}
	})

	t.Run("sign in", func(t *testing.T) {
		do(t, ctx, "open the console", 30*time.Second,
			chromedp.Navigate(consoleURL+"/"),
			chromedp.WaitVisible(css(`body[data-ready="true"] #key`)),
		)
		unlabelled := js[[]string](t, ctx, `[...document.querySelectorAll("input, select, progress, textarea")].filter(e => e.labels.length === 0).map(e => e.id || e.name)`)
		if len(unlabelled) > 0 {
			t.Errorf("controls without a label: %v", unlabelled)
		}
		screenshot(t, ctx, "signin")
		// By keyboard: type the key, Enter submits.
		do(t, ctx, "sign in", 30*time.Second,
			chromedp.Focus(css(`#key`)),
			chromedp.SendKeys(css(`#key`), key+kb.Enter),
			chromedp.WaitVisible(css(`#history`)),
		)
		stored, href := js[string](t, ctx, `sessionStorage.getItem("ferry.key")`), js[string](t, ctx, `location.href`)
		if stored != key || strings.Contains(href, key) {
			t.Errorf("the key should be in sessionStorage (it is: %t) and not in the address (%s)", stored == key, href)
		}
	})

	t.Run("timeline advances live", func(t *testing.T) {
		// Record every value the progress bar takes.
		js[bool](t, ctx, `
			window.progressSeen = [];
			new MutationObserver(() => {
				const p = document.getElementById("t-progress");
				if (p.max > 1) window.progressSeen.push(p.value);
			}).observe(document.getElementById("t-progress"), {attributes: true, attributeFilter: ["value", "max"]});
			true`)
		// Six chunks of 5 MiB (route to-partner-a), each a stream round
		// trip: the page opens well before the last.
		const chunks = 6
		id, _ := stack.upload(t, "outbound/"+sender+".bin", chunks*5<<20, map[string]string{"sender": sender, "recipient": "partner-a"})
		js[bool](t, ctx, fmt.Sprintf(`location.hash = "#/transfers/%s"; true`, id))
		do(t, ctx, "open the timeline", 10*time.Second, chromedp.WaitVisible(css(`#transfer`)))
		screenshot(t, ctx, "sending")
		do(t, ctx, "wait for Delivered in the timeline", 2*time.Minute,
			chromedp.WaitVisible(css(`#timeline li[data-type="Delivered"]`)),
		)
		stack.waitFor(t, id, 10*time.Second, "delivered", delivered)
		value := get(t, ctx, "progress value", chromedp.AttributeValue(css(`#t-progress`), "value")).Value
		max := get(t, ctx, "progress max", chromedp.AttributeValue(css(`#t-progress`), "max")).Value
		seen := js[[]int](t, ctx, `window.progressSeen`)
		types := js[[]string](t, ctx, `[...document.querySelectorAll("#timeline li")].map(li => li.dataset.type)`)
		liveTypes := js[[]string](t, ctx, `[...document.querySelectorAll("#timeline li[data-live]")].map(li => li.dataset.type)`)
		screenshot(t, ctx, "delivered")
		t.Logf("progress bar values: %v; timeline %v, of which live %v", seen, types, liveTypes)
		if want := strconv.Itoa(chunks); value != want || max != want {
			t.Errorf("progress bar at %s of %s, want %s of %s", value, max, want, want)
		}
		want := []string{"Requested", "Started"}
		for range chunks {
			want = append(want, "ChunkSent")
		}
		want = append(want, "Delivered")
		if strings.Join(types, " ") != strings.Join(want, " ") {
			t.Errorf("timeline %v, want %v", types, want)
		}
		// It advanced while watched: events came over the WebSocket, and
		// the bar took more than one value, never going back.
		if len(liveTypes) == 0 || liveTypes[len(liveTypes)-1] != "Delivered" {
			t.Errorf("events that arrived live: %v; want at least Delivered", liveTypes)
		}
		var distinct []int
		for _, v := range seen {
			if n := len(distinct); n == 0 || distinct[n-1] != v {
				if n > 0 && v < distinct[n-1] {
					t.Errorf("the progress bar went back: %v", seen)
				}
				distinct = append(distinct, v)
			}
		}
		if len(distinct) < 2 {
			t.Errorf("the progress bar took the values %v; want it to rise while watched", seen)
		}
		if status := get(t, ctx, "status", chromedp.Text(css(`#t-status`))); status != "DELIVERED" {
			t.Errorf("status %q, want DELIVERED", status)
		}

		// The history finds it by its sender (the read model follows the
		// stream: search again until it is there).
		do(t, ctx, "back to the history", 10*time.Second,
			chromedp.Click(css(`a[href="#/"]`)),
			chromedp.WaitVisible(css(`#history`)),
			chromedp.SetValue(css(`#f-sender`), sender),
		)
		row := fmt.Sprintf(`[...document.querySelectorAll('#history-rows tr[data-id="%s"] .status')].filter(td => td.textContent === "DELIVERED").length`, id)
		for deadline := time.Now().Add(30 * time.Second); ; {
			do(t, ctx, "search by sender", 10*time.Second,
				chromedp.Click(css(`#filters button[type="submit"]`)),
				chromedp.Sleep(500*time.Millisecond), // a poll's interval
			)
			if js[int](t, ctx, row) == 1 {
				break
			}
			if time.Now().After(deadline) {
				screenshot(t, ctx, "history")
				t.Fatalf("the history by sender %s does not show %s DELIVERED", sender, id)
			}
		}
		screenshot(t, ctx, "history")
	})

	t.Run("replay a failed transfer", func(t *testing.T) {
		id, _ := stack.upload(t, "outbound/refused/"+sender+".bin", 1000, map[string]string{"sender": sender})
		stack.waitFor(t, id, time.Minute, "failed", func(st domain.State) bool { return st.Status == domain.StatusFailed })
		js[bool](t, ctx, fmt.Sprintf(`location.hash = "#/transfers/%s"; true`, id))
		do(t, ctx, "open the failed transfer", 30*time.Second,
			chromedp.WaitVisible(css(`#t-failure`)),
			chromedp.WaitVisible(css(`#timeline li[data-type="Failed"]`)),
		)
		if reason := get(t, ctx, "failure reason", chromedp.Text(css(`#t-reason`))); !strings.Contains(reason, "for good") {
			t.Errorf("failure reason %q: want the error, said to be for good", reason)
		}
		screenshot(t, ctx, "failed")
		why := "bucket recreated (console test)"
		do(t, ctx, "ask for a replay", 20*time.Second,
			chromedp.Click(css(`#replay`)),
			chromedp.WaitVisible(css(`#replay-dialog[open] #replay-reason`)),
		)
		if focused := js[string](t, ctx, `document.activeElement.id`); focused != "replay-reason" {
			t.Errorf("the dialog opened with %q focused, want its reason", focused)
		}
		screenshot(t, ctx, "replay-dialog")
		// By keyboard, in the dialog: the reason, then Enter.
		do(t, ctx, "replay", 30*time.Second,
			chromedp.SendKeys(css(`#replay-reason`), why+kb.Enter),
			chromedp.WaitNotPresent(css(`#replay-dialog[open]`)),
			chromedp.WaitVisible(css(`#timeline li[data-type="Replayed"]`)),
		)
		if replayed := get(t, ctx, "the replay", chromedp.Text(css(`#timeline li[data-type="Replayed"]`))); !strings.Contains(replayed, opsParty) {
			t.Errorf("replay in the timeline %q, want it to name the operator %s", replayed, opsParty)
		}
		var recorded string
		for _, ev := range stack.events(t, id) {
			if r, ok := ev.Payload.(domain.Replayed); ok {
				recorded = r.Reason
			}
		}
		if recorded != why {
			t.Errorf("the Replayed event's reason is %q, want %q", recorded, why)
		}
		// The replay fails again (the route's bucket still does not
		// exist), live.
		do(t, ctx, "wait for the replay's failure", time.Minute,
			chromedp.WaitVisible(css(`#timeline li[data-type="Replayed"] ~ li[data-type="Failed"]`)),
		)
		screenshot(t, ctx, "replayed")
	})
}
