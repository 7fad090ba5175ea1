package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/api"
	"github.com/lapse-access/lapse/client"
)

type loginOptions struct {
	noBrowser bool
	maxAge    time.Duration
	timeout   time.Duration
}

func newLogin(g *globals) *cobra.Command {
	var o loginOptions
	cmd := &cobra.Command{
		Use:   "login [--no-browser]",
		Short: "Sign in through the identity provider and keep the session for the other commands",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			server := g.serverURL()
			t, err := g.login(cmd.Context(), server, o)
			if err != nil {
				return err
			}
			if g.json() {
				return g.printJSON(map[string]any{"user": t.User, "groups": t.Groups, "expires_at": t.ExpiresAt, "refresh_expires_at": t.RefreshExpiresAt})
			}
			fmt.Fprintf(g.stdout, "Signed in to %s as %s (groups: %s); the session is refreshed until %s.\n",
				server, t.User, strings.Join(t.Groups, ", "), t.RefreshExpiresAt.Local().Format(time.RFC1123))
			return nil
		},
	}
	cmd.Flags().BoolVar(&o.noBrowser, "no-browser", false, "print the sign-in URL instead of opening a browser")
	cmd.Flags().DurationVar(&o.maxAge, "max-age", 0, "ask the identity provider to authenticate you again if your last sign-in there is older (e.g. 5m)")
	cmd.Flags().DurationVar(&o.timeout, "timeout", 5*time.Minute, "how long to wait for the sign-in to finish")
	return cmd
}

// randomString returns 32 random bytes in base64url (43 characters).
func randomString() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

var loginDone = template.Must(template.New("done").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>Lapse</title></head><body><p>{{.}}</p></body></html>`))

// login runs a CLI sign-in against server: a loopback listener receives a
// one-time code, which is exchanged, with the verifier only this process
// knows, for a session that is stored for the other commands.
func (g *globals) login(ctx context.Context, server string, o loginOptions) (api.Tokens, error) {
	if o.timeout <= 0 {
		o.timeout = 5 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	verifier, state := randomString(), randomString()
	sum := sha256.Sum256([]byte(verifier))
	challenge := base64.RawURLEncoding.EncodeToString(sum[:])
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return api.Tokens{}, fmt.Errorf("listen for the sign-in's redirect: %w", err)
	}
	redirect := "http://" + ln.Addr().String() + "/callback"
	type result struct {
		code string
		err  error
	}
	results := make(chan result, 1)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /callback", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		var res result
		switch {
		case subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(state)) != 1:
			w.WriteHeader(http.StatusBadRequest)
			_ = loginDone.Execute(w, "This sign-in was not started by this lapse login; ignored.")
			return
		case q.Get("code") == "":
			res.err = errors.New("the server sent no code")
		default:
			res.code = q.Get("code")
		}
		msg := "Signed in to Lapse. You can close this window."
		if res.err != nil {
			msg = "Sign-in failed: " + res.err.Error()
		}
		_ = loginDone.Execute(w, msg)
		select {
		case results <- res:
		default:
		}
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer func() {
		sctx, done := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer done()
		_ = srv.Shutdown(sctx)
	}()

	q := url.Values{"cli_redirect": {redirect}, "cli_challenge": {challenge}, "cli_state": {state}}
	if o.maxAge > 0 {
		q.Set("max_age", fmt.Sprint(int64((o.maxAge+time.Second-1)/time.Second)))
	}
	loginURL := server + "/auth/login?" + q.Encode()
	if o.noBrowser || os.Getenv("LAPSE_NO_BROWSER") != "" || openBrowser(loginURL) != nil {
		fmt.Fprintf(g.stderr, "Open this URL in a browser to sign in:\n\n  %s\n\n", loginURL)
	} else {
		fmt.Fprintf(g.stderr, "Opened a browser to sign in. If it did not open, visit:\n\n  %s\n\n", loginURL)
	}
	var res result
	select {
	case res = <-results:
	case <-ctx.Done():
		return api.Tokens{}, fmt.Errorf("no sign-in within %s: %w", o.timeout, ctx.Err())
	}
	if res.err != nil {
		return api.Tokens{}, res.err
	}
	t, err := client.New(server, "").ExchangeCode(ctx, res.code, verifier)
	if err != nil {
		return api.Tokens{}, fmt.Errorf("exchange the sign-in code: %w", err)
	}
	if err := storeSession(server, t, o.noBrowser); err != nil {
		return api.Tokens{}, err
	}
	return t, nil
}

// openBrowser opens url in the user's browser.
func openBrowser(url string) error {
	var cmd *exec.Cmd
	switch runtime.GOOS {
	case "darwin":
		cmd = exec.Command("open", url)
	case "windows":
		cmd = exec.Command("rundll32", "url.dll,FileProtocolHandler", url)
	default:
		cmd = exec.Command("xdg-open", url)
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	go func() { _ = cmd.Wait() }()
	return nil
}

func newLogout(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "logout",
		Short: "Revoke the session of lapse login on the server and forget it",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			server := g.serverURL()
			f, path, err := loadSessions()
			if err != nil {
				return err
			}
			s, ok := f.Sessions[server]
			if !ok {
				return fmt.Errorf("not signed in to %s", server)
			}
			err = client.New(server, s.Token).Logout(cmd.Context())
			if err != nil && !errors.Is(err, lapse.ErrUnauthenticated) {
				return fmt.Errorf("revoke the session: %w (it is kept; try again)", err)
			}
			delete(f.Sessions, server)
			if err := f.save(path); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "Signed out of %s.\n", server)
			return nil
		},
	}
}
