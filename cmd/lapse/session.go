package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/api"
	"github.com/lapse-access/lapse/client"
)

// sessionFile holds the sessions of `lapse login`, by server URL.
type sessionFile struct {
	Sessions map[string]storedSession `json:"sessions"`
}

type storedSession struct {
	api.Tokens
	// NoBrowser remembers --no-browser for step-up sign-ins.
	NoBrowser bool `json:"no_browser,omitempty"`
}

// sessionPath is the file in the user's config dir.
func sessionPath() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("find the config dir for the session: %w", err)
	}
	return filepath.Join(dir, "lapse", "session.json"), nil
}

func loadSessions() (sessionFile, string, error) {
	f := sessionFile{Sessions: map[string]storedSession{}}
	path, err := sessionPath()
	if err != nil {
		return f, "", err
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return f, path, nil
	}
	if err != nil {
		return f, path, fmt.Errorf("read session: %w", err)
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return f, path, fmt.Errorf("read session %s: %w (remove it and run lapse login)", path, err)
	}
	if f.Sessions == nil {
		f.Sessions = map[string]storedSession{}
	}
	return f, path, nil
}

// save writes the file readable by the user alone, atomically.
func (f sessionFile) save(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("save session: %w", err)
	}
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("save session: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".session-*")
	if err != nil {
		return fmt.Errorf("save session: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("save session: %w", err)
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("save session: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save session: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("save session: %w", err)
	}
	return nil
}

// storeSession keeps t as the session for server.
func storeSession(server string, t api.Tokens, noBrowser bool) error {
	f, path, err := loadSessions()
	if err != nil {
		return err
	}
	f.Sessions[server] = storedSession{Tokens: t, NoBrowser: noBrowser}
	return f.save(path)
}

// refreshMargin is how long before its expiry a session is refreshed.
const refreshMargin = time.Minute

// sessionClient returns a client with the stored session of server,
// refreshed if it is about to expire, that signs in again when the server
// asks for a fresher second factor.
func (g *globals) sessionClient(server string) (*client.Client, error) {
	f, path, err := loadSessions()
	if err != nil {
		return nil, err
	}
	s, ok := f.Sessions[server]
	if !ok {
		return nil, fmt.Errorf("no token: pass --token, set LAPSE_TOKEN, or sign in with lapse login (server %s)", server)
	}
	if time.Now().Add(refreshMargin).After(s.ExpiresAt) {
		if s, err = refreshSession(server, path); err != nil {
			return nil, err
		}
	}
	c := client.New(server, s.Token)
	c.OnStepUp = func(ctx context.Context, maxAge time.Duration) (string, error) {
		fmt.Fprintf(g.stderr, "This needs a second factor from the last %s: sign in again.\n", maxAge)
		t, err := g.login(ctx, server, loginOptions{noBrowser: s.NoBrowser, maxAge: maxAge})
		if err != nil {
			return "", err
		}
		return t.Token, nil
	}
	return c, nil
}

// refreshSession rotates the stored session of server. It holds a lock on
// the session file meanwhile and reads the file again under it, so that
// several lapse processes refresh once: a refresh token used twice would
// revoke the session.
func refreshSession(server, path string) (storedSession, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return storedSession{}, fmt.Errorf("lock session: %w", err)
	}
	lock, err := os.OpenFile(path+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return storedSession{}, fmt.Errorf("lock session: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return storedSession{}, fmt.Errorf("lock session: %w", err)
	}
	defer func() { _ = syscall.Flock(int(lock.Fd()), syscall.LOCK_UN) }()
	f, _, err := loadSessions()
	if err != nil {
		return storedSession{}, err
	}
	s, ok := f.Sessions[server]
	if !ok {
		return storedSession{}, fmt.Errorf("no token: pass --token, set LAPSE_TOKEN, or sign in with lapse login (server %s)", server)
	}
	now := time.Now()
	if !now.Add(refreshMargin).After(s.ExpiresAt) {
		return s, nil // another process refreshed it
	}
	if !now.Before(s.RefreshExpiresAt) {
		return storedSession{}, fmt.Errorf("your session with %s ended at %s; sign in again with lapse login", server, s.RefreshExpiresAt.Local().Format(time.RFC1123))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	t, err := client.New(server, "").Refresh(ctx, s.RefreshToken)
	if err != nil {
		if errors.Is(err, lapse.ErrUnauthenticated) {
			delete(f.Sessions, server)
			_ = f.save(path)
		}
		return storedSession{}, fmt.Errorf("refresh the session: %w", err)
	}
	s.Tokens = t
	f.Sessions[server] = s
	return s, f.save(path)
}
