package health

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	cloudinit "github.com/cairn-edge/cairn/cloud-init"
)

type network struct{ rounds atomic.Int32 }

// Converged succeeds from the third call on, like links coming up.
func (n *network) Converged(context.Context) error {
	if n.rounds.Add(1) < 3 {
		return errors.New("eth0: no address yet")
	}
	return nil
}

func TestGatePassesOnceEveryCheckHasPassed(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	n := &network{}
	g := Gate{Interval: time.Millisecond, Checks: []Check{
		AgentUp(nil),
		Network(n),
		Command("true", []string{"true"}, 0),
		HTTP("web", srv.URL, 0, 0, nil),
	}}
	v := g.Run(context.Background())
	if !v.Passed || v.Err() != nil {
		t.Fatalf("verdict %+v", v)
	}
	if got := n.rounds.Load(); got != 3 {
		t.Fatalf("network checked %d times, want 3 (passed checks are not rerun)", got)
	}
	for _, r := range v.Results {
		if !r.Passed {
			t.Errorf("result %+v not passed", r)
		}
	}
}

func TestGateFailsAtTheDeadlineNamingTheCheck(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	url := srv.URL + "/healthz"
	g := Gate{Deadline: 2 * time.Second, Interval: 10 * time.Millisecond, Checks: []Check{
		AgentUp(nil),
		HTTP(url, url, 0, 0, nil),
	}}
	v := g.Run(context.Background())
	want := "health gate failed after 2s: check " + url + ": status 503"
	if v.Passed || v.Reason != want {
		t.Fatalf("reason %q, want %q", v.Reason, want)
	}
	if err := v.Err(); !errors.Is(err, ErrUnhealthy) || !strings.Contains(err.Error(), "status 503") {
		t.Fatalf("Err() = %v", err)
	}
	if !v.Results[0].Passed || v.Results[1].Passed {
		t.Fatalf("results %+v", v.Results)
	}
}

func TestHTTPCheckWantsTheExpectedStatus(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	ctx := context.Background()
	if err := HTTP("any 2xx", srv.URL, 0, 0, nil).Run(ctx); err != nil {
		t.Errorf("204 with any 2xx wanted: %v", err)
	}
	if err := HTTP("exact", srv.URL, 204, 0, nil).Run(ctx); err != nil {
		t.Errorf("204 with 204 wanted: %v", err)
	}
	if err := HTTP("exact", srv.URL, 200, 0, nil).Run(ctx); err == nil || err.Error() != "status 204" {
		t.Errorf("204 with 200 wanted: %v", err)
	}
}

func TestCommandCheckReportsExitOutputAndTimeout(t *testing.T) {
	ctx := context.Background()
	err := Command("boom", []string{"/bin/sh", "-c", "echo starting; echo disk missing >&2; exit 3"}, 0).Run(ctx)
	if err == nil || !strings.Contains(err.Error(), "exit status 3") || !strings.Contains(err.Error(), "disk missing") {
		t.Fatalf("failing command: %v", err)
	}
	err = Command("slow", []string{"sleep", "10"}, 10*time.Millisecond).Run(ctx)
	if err == nil || !strings.Contains(err.Error(), "no exit within 10ms") {
		t.Fatalf("slow command: %v", err)
	}
	if err := Command("missing", []string{"/nonexistent/check"}, 0).Run(ctx); err == nil {
		t.Fatal("a missing program passed")
	}
}

func TestGateInterruptedSaysSo(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	g := Gate{Interval: time.Millisecond, Checks: []Check{Func("never", func(context.Context) error {
		cancel()
		return errors.New("not yet")
	})}}
	v := g.Run(ctx)
	if v.Passed || v.Reason != "health gate interrupted: check never: not yet" {
		t.Fatalf("verdict %+v", v)
	}
}

func TestChecksFromConfig(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	ud, err := cloudinit.ParseUserData("user-data", []byte(`#cloud-config
cairn:
  health:
    deadline: 2m
    checks:
      - name: shell
        command: "exit 0"
      - name: argv
        command: ["false"]
        timeout: 3s
      - name: web
        http: `+srv.URL+`/healthz
`))
	if err != nil {
		t.Fatal(err)
	}
	checks, deadline, err := FromConfig(ud.Cairn.Health)
	if err != nil {
		t.Fatal(err)
	}
	if deadline != 2*time.Minute || len(checks) != 3 {
		t.Fatalf("deadline %v, %d checks", deadline, len(checks))
	}
	ctx := context.Background()
	if err := checks[0].Run(ctx); err != nil {
		t.Errorf("shell check: %v", err)
	}
	if err := checks[1].Run(ctx); err == nil {
		t.Error("argv check running false passed")
	}
	if checks[2].Name() != srv.URL+"/healthz" || checks[2].Run(ctx) == nil {
		t.Errorf("http check %q passed on 503", checks[2].Name())
	}
}

// When the deadline cuts a check's last attempt short, the verdict names
// the check's last real failure, not the cancellation.
func TestDeadlineCuttingAnAttemptKeepsTheLastRealFailure(t *testing.T) {
	calls := 0
	slow := Func("k3s", func(ctx context.Context) error {
		calls++
		if calls == 1 {
			return errors.New("node NotReady: KubeletNotReady")
		}
		<-ctx.Done()
		return ctx.Err()
	})
	v := (&Gate{Deadline: 50 * time.Millisecond, Interval: time.Millisecond, Checks: []Check{slow}}).Run(context.Background())
	if v.Passed || !strings.Contains(v.Reason, "node NotReady: KubeletNotReady") || calls < 2 {
		t.Fatalf("verdict %q after %d attempts, want the NotReady reason", v.Reason, calls)
	}
}
