// Package api serves the agent's local API: JSON over HTTP on a unix
// socket that only root may use.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/cairn-edge/cairn/agent"
	"github.com/cairn-edge/cairn/agent/update"
)

// DefaultSocket is where the agent listens; the agent opens no TCP port.
const DefaultSocket = "/run/cairn/agent.sock"

// Engine is the update engine as the API uses it (*update.Engine).
type Engine interface {
	Status() update.Status
	CheckNow(ctx context.Context) (*update.Offer, error)
	Apply(ctx context.Context) error
	Rollback(ctx context.Context) error
}

// Server answers the local API.
type Server struct {
	Engine Engine
	// Slots returns the slot table, read fresh from the boot env.
	Slots func() (*agent.Status, error)
	Log   *zap.Logger // nil: no logs
	// AllowUID decides which peers are served; nil: root only.
	AllowUID func(uid uint32) bool
}

// Listen creates the socket at path: its directory mode 0700, the socket
// mode 0600, a stale socket from an earlier run replaced.
func Listen(path string) (net.Listener, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("api socket %s: %w", path, err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("api socket %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("api socket %s: remove stale socket: %w", path, err)
	}
	// The umask makes the socket 0600 from the start; a chmod after bind
	// would leave a moment in which others could connect.
	old := unix.Umask(0o177)
	ln, err := net.Listen("unix", path)
	unix.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("api socket %s: %w", path, err)
	}
	return ln, nil
}

type peerKey struct{}

// Serve answers requests on ln until ctx ends.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", s.status)
	mux.HandleFunc("POST /v1/update/check", s.check)
	mux.HandleFunc("POST /v1/update/apply", s.apply)
	mux.HandleFunc("POST /v1/rollback", s.rollback)
	srv := &http.Server{
		Handler:           s.rootOnly(mux),
		ReadHeaderTimeout: 10 * time.Second,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, peerKey{}, peerUID(c))
		},
	}
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(shut)
	}()
	err := srv.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return ctx.Err()
	}
	return err
}

// peer is who connected, from SO_PEERCRED.
type peer struct {
	uid uint32
	err error
}

func peerUID(c net.Conn) peer {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return peer{err: errors.New("not a unix socket")}
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return peer{err: err}
	}
	var cred *unix.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return peer{err: err}
	}
	if credErr != nil {
		return peer{err: fmt.Errorf("SO_PEERCRED: %w", credErr)}
	}
	return peer{uid: cred.Uid}
}

// rootOnly refuses peers that are not root, whatever the socket's mode.
func (s *Server) rootOnly(next http.Handler) http.Handler {
	allow := s.AllowUID
	if allow == nil {
		allow = func(uid uint32) bool { return uid == 0 }
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := r.Context().Value(peerKey{}).(peer)
		switch {
		case p.err != nil:
			writeError(w, http.StatusForbidden, "peer", fmt.Errorf("peer credentials: %v", p.err))
		case !allow(p.uid):
			s.log().Warn("api: refused peer", zap.Uint32("uid", p.uid), zap.String("path", r.URL.Path))
			writeError(w, http.StatusForbidden, "peer", fmt.Errorf("peer uid %d: the agent API is for root only", p.uid))
		default:
			next.ServeHTTP(w, r)
		}
	})
}

func (s *Server) log() *zap.Logger {
	if s.Log == nil {
		return zap.NewNop()
	}
	return s.Log
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	slots, err := s.Slots()
	if err != nil {
		writeError(w, http.StatusInternalServerError, "", err)
		return
	}
	u := s.Engine.Status()
	writeJSON(w, http.StatusOK, DeviceStatus{Status: WithVersions(slots, u), Update: &u})
}

func (s *Server) check(w http.ResponseWriter, r *http.Request) {
	o, err := s.Engine.CheckNow(r.Context())
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, CheckResult{Offer: o, Installing: true})
	case update.Idle(err):
		writeJSON(w, http.StatusOK, CheckResult{Message: err.Error()})
	default:
		writeError(w, http.StatusBadGateway, "", err)
	}
}

func (s *Server) apply(w http.ResponseWriter, r *http.Request) {
	s.act(w, s.Engine.Apply(context.WithoutCancel(r.Context())), "rebooting into the installed release")
}

func (s *Server) rollback(w http.ResponseWriter, r *http.Request) {
	s.act(w, s.Engine.Rollback(context.WithoutCancel(r.Context())), "rebooting into the other slot")
}

func (s *Server) act(w http.ResponseWriter, err error, done string) {
	for _, c := range codes {
		if errors.Is(err, c.err) {
			writeError(w, http.StatusConflict, c.code, err)
			return
		}
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, "", err)
		return
	}
	writeJSON(w, http.StatusOK, Message{Message: done})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, code string, err error) {
	writeJSON(w, status, Error{Error: err.Error(), Code: code})
}
