package update

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// A channel server that stops answering, before its headers or in the
// middle of a body, ends a check after CheckTimeout with an error that says
// so, instead of holding the update engine forever.
func TestChannelCheckEndsWhenTheServerStopsAnswering(t *testing.T) {
	f := newFixture(t, 1, 1)
	f.publish(board, "1.1.0", "stable", 100)
	for name, stall := range map[string]func(w http.ResponseWriter){
		"before the headers": func(http.ResponseWriter) {},
		"inside a body": func(w http.ResponseWriter) {
			w.Header().Set("Content-Length", "4096")
			w.WriteHeader(http.StatusOK)
			w.Write([]byte(`{"signed":`))
			w.(http.Flusher).Flush()
		},
	} {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if !strings.HasSuffix(r.URL.Path, "timestamp.json") {
					http.FileServer(http.Dir(f.repo.ServeDir())).ServeHTTP(w, r)
					return
				}
				stall(w)
				<-r.Context().Done()
			}))
			defer srv.Close()
			defer srv.CloseClientConnections()
			const limit = 300 * time.Millisecond
			c := f.channel(func(c *ChannelConfig) { c.RepositoryURL, c.CheckTimeout = srv.URL, limit })
			for what, check := range map[string]func(context.Context) (*Offer, error){"Check": c.Check, "Current": c.Current} {
				// The outer limit only keeps a missing bound from hanging
				// the package: its error does not name 300ms.
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				o, err := check(ctx)
				cancel()
				if o != nil || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "no complete answer within 300ms") {
					t.Errorf("%s = %v, %v; want no offer and a timeout error naming 300ms", what, o, err)
				}
			}
		})
	}
	// The same channel, answering again, is checked as before.
	if o, err := f.channel().Check(context.Background()); err != nil || o.Manifest.Version != "1.1.0" {
		t.Fatalf("Check of the answering server = %v, %v", o, err)
	}
}
