package webui

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/lapse-access/lapse"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// view is what a page template sees.
type view struct {
	Title   string
	Nav     string
	Session session
	CSRF    string
	Version string
	Now     time.Time
	// Flash says what the last action did; Error what went wrong, with
	// the response's Status.
	Flash  string
	Error  string
	Status int
	// ReplaceURL, if set, is the address the browser shows instead of the
	// POST that rendered the page (so a reload does not send it again).
	ReplaceURL string

	// sign-in
	Next        string
	SigninCSRF  string
	SSOLoginURL string
	StepUpURL   string

	Requests    []lapse.Request
	Request     *lapse.Request
	Timeline    []event
	Credentials *lapse.Credentials
	Resources   []lapse.Resource
	Form        requestForm
	// Filter is the state filter of a list of requests, and Path the
	// list's address.
	Filter string
	Path   string
	// CanDecide says that the signed-in principal may approve or deny the
	// request shown.
	CanDecide bool
	// Truncated says that the list shows only the newest of more.
	Truncated bool

	template string
}

// requestForm is what a requester typed into the new-request form, shown
// again when it is refused.
type requestForm struct {
	Target, Duration, Reason, Ticket, Device, SSHKey string
}

// event is an audit record as the timeline shows it.
type event struct {
	lapse.AuditEvent
	Details []detail
}

type detail struct{ Key, Value string }

// eventOf turns an audit record's data into sorted key-value pairs.
func eventOf(e lapse.AuditEvent) event {
	out := event{AuditEvent: e}
	var data map[string]json.RawMessage
	if len(e.Data) == 0 || json.Unmarshal(e.Data, &data) != nil {
		if len(e.Data) > 0 {
			out.Details = []detail{{"data", string(e.Data)}}
		}
		return out
	}
	for k, raw := range data {
		var s string
		v := string(raw)
		if json.Unmarshal(raw, &s) == nil {
			v = s
		}
		if v == "" || v == "null" || v == "0" || v == "{}" || v == "[]" || v == "0001-01-01T00:00:00Z" {
			continue
		}
		out.Details = append(out.Details, detail{k, v})
	}
	slices.SortFunc(out.Details, func(a, b detail) int { return strings.Compare(a.Key, b.Key) })
	return out
}

// pageTemplate is the layout with one page's content.
type pageTemplate struct{ t *template.Template }

func (p *pageTemplate) execute(w io.Writer, v *view) error {
	return p.t.ExecuteTemplate(w, "layout", v)
}

var funcs = template.FuncMap{
	"when": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format("2006-01-02 15:04:05 UTC")
	},
	"iso": func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	// left is the time from now until t, for a countdown's first text.
	"left": func(now, t time.Time) string { return human(t.Sub(now)) },
	"seconds": func(now, t time.Time) int64 {
		return int64(max(t.Sub(now), 0) / time.Second)
	},
	"human":      human,
	"open":       func(s lapse.State) bool { return !s.Terminal() },
	"ended":      func(s lapse.State) bool { return s.Terminal() },
	"target":     func(res, role string) string { return res + "/" + role },
	"statusText": http.StatusText,
	"join":       strings.Join,
	// pair hands a sub-template a request and something of its page.
	"pair": func(x any, r *lapse.Request) pair { return pair{x, r} },
}

// pair is the argument of the sub-templates that show a request.
type pair struct {
	X any
	R *lapse.Request
}

// human formats d for people: "1h 4m", "59s", "expired".
func human(d time.Duration) string {
	if d <= 0 {
		return "expired"
	}
	d = d.Round(time.Second)
	h, m, s := int(d/time.Hour), int(d%time.Hour/time.Minute), int(d%time.Minute/time.Second)
	two := func(a int, ua string, b int, ub string) string {
		if b == 0 {
			return fmt.Sprintf("%d%s", a, ua)
		}
		return fmt.Sprintf("%d%s %d%s", a, ua, b, ub)
	}
	switch {
	case h >= 48:
		return two(h/24, "d", h%24, "h")
	case h > 0:
		return two(h, "h", m, "m")
	case m > 0:
		return two(m, "m", s, "s")
	}
	return fmt.Sprintf("%ds", s)
}

// parsePages parses each page template with the layout.
func parsePages(version string) (map[string]*pageTemplate, error) {
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	fm := template.FuncMap{"asset": func(name string) string { return "/static/" + name + "?v=" + version }}
	for k, f := range funcs {
		fm[k] = f
	}
	out := map[string]*pageTemplate{}
	for _, n := range names {
		name := strings.TrimSuffix(path.Base(n), ".html")
		if name == "layout" {
			continue
		}
		t, err := template.New(name).Funcs(fm).ParseFS(templateFS, "templates/layout.html", n)
		if err != nil {
			return nil, fmt.Errorf("webui: parse %s: %w", n, err)
		}
		out[name] = &pageTemplate{t}
	}
	return out, nil
}

// asset is one embedded static file.
type asset struct {
	body        []byte
	contentType string
	etag        string
}

// loadAssets reads the static files and returns them with a version that
// changes whenever one of them does.
func loadAssets() (map[string]asset, string, error) {
	out := map[string]asset{}
	all := sha256.New()
	err := fs.WalkDir(staticFS, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := staticFS.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		all.Write(sum[:])
		ct := mime.TypeByExtension(path.Ext(p))
		if ct == "" {
			ct = "application/octet-stream"
		}
		out[path.Base(p)] = asset{body: b, contentType: ct, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
		return nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("webui: read assets: %w", err)
	}
	return out, hex.EncodeToString(all.Sum(nil)[:6]), nil
}

// static serves an embedded asset. Pages name assets with their version,
// so the browser may keep them a day; a new version has a new address.
func (s *Server) static(w http.ResponseWriter, r *http.Request) {
	a, ok := s.assets[r.PathValue("name")]
	if !ok {
		http.NotFound(w, r)
		return
	}
	h := w.Header()
	h.Set("Content-Type", a.contentType)
	h.Set("ETag", a.etag)
	h.Set("Cache-Control", "public, max-age=86400")
	http.ServeContent(w, r, "", time.Time{}, strings.NewReader(string(a.body)))
}
