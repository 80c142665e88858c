package courier

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"io/fs"
	"net/url"
	"os"
	"path"
	"strings"
	"sync"
	texttemplate "text/template"
)

//go:embed templates
var embedded embed.FS

// DefaultLocale is the locale of the embedded templates, and the last fallback.
const DefaultLocale = "en"

// Templates render messages. A message of kind K for locale L (a BCP 47 tag such as "pt-BR") is
// read from <L>/K.tmpl, then <language of L>/K.tmpl, then en/K.tmpl, first in the override
// directory, then in the embedded defaults. A template file defines "subject", "text" and "html";
// "html" is rendered with html/template, so values are escaped. It is safe for concurrent use.
type Templates struct {
	dirs      []fs.FS
	publicURL string
	mu        sync.Mutex
	cache     map[string]*parsed
}

type parsed struct {
	text *texttemplate.Template
	html *htmltemplate.Template
}

// NewTemplates returns the templates: those in dir (may be "") override the embedded ones. Links
// in messages start with publicURL (the frontend that handles /confirm-email and /reset-password).
func NewTemplates(dir, publicURL string) (*Templates, error) {
	u, err := url.Parse(publicURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("courier: public URL %q must be an absolute http(s) URL", publicURL)
	}
	sub, _ := fs.Sub(embedded, "templates")
	t := &Templates{dirs: []fs.FS{sub}, publicURL: strings.TrimRight(publicURL, "/"), cache: map[string]*parsed{}}
	if dir != "" {
		if st, err := os.Stat(dir); err != nil || !st.IsDir() {
			return nil, fmt.Errorf("courier: templates directory %q: not a readable directory", dir)
		}
		t.dirs = []fs.FS{os.DirFS(dir), sub}
	}
	return t, nil
}

// Rendered is a message ready to send.
type Rendered struct {
	Subject, Text, HTML string
}

// data is what templates see.
type data struct {
	Kind, To, Token, Link, PublicURL, Locale string
	Data                                     map[string]string
}

// links of the kinds that carry a one-shot token: the frontend route that takes it.
var links = map[string]string{
	"email_confirmation": "/confirm-email",
	"password_reset":     "/reset-password",
}

// Render renders a message of kind with payload p.
func (t *Templates) Render(kind string, p Payload) (Rendered, error) {
	pt, err := t.lookup(kind, p.Locale)
	if err != nil {
		return Rendered{}, err
	}
	d := data{Kind: kind, To: p.To, Token: p.Token, PublicURL: t.publicURL, Locale: p.Locale, Data: p.Data}
	if route, ok := links[kind]; ok && p.Token != "" {
		d.Link = t.publicURL + route + "?token=" + url.QueryEscape(p.Token)
	}
	var r Rendered
	var b bytes.Buffer
	if err := pt.text.ExecuteTemplate(&b, "subject", d); err != nil {
		return Rendered{}, fmt.Errorf("courier: render %s subject: %w", kind, err)
	}
	r.Subject = strings.TrimSpace(b.String())
	b.Reset()
	if err := pt.text.ExecuteTemplate(&b, "text", d); err != nil {
		return Rendered{}, fmt.Errorf("courier: render %s text: %w", kind, err)
	}
	r.Text = strings.TrimLeft(b.String(), "\n")
	b.Reset()
	if err := pt.html.ExecuteTemplate(&b, "html", d); err != nil {
		return Rendered{}, fmt.Errorf("courier: render %s html: %w", kind, err)
	}
	r.HTML = strings.TrimLeft(b.String(), "\n")
	return r, nil
}

// candidates are the locales tried for locale, in order.
func candidates(locale string) []string {
	var out []string
	if locale != "" {
		out = append(out, locale)
		if lang, _, ok := strings.Cut(locale, "-"); ok {
			out = append(out, lang)
		}
	}
	return append(out, DefaultLocale)
}

func (t *Templates) lookup(kind, locale string) (*parsed, error) {
	if strings.ContainsAny(kind+locale, "/\\.") {
		return nil, fmt.Errorf("courier: no template for kind %q, locale %q", kind, locale)
	}
	key := kind + "|" + locale
	t.mu.Lock()
	defer t.mu.Unlock()
	if p, ok := t.cache[key]; ok {
		return p, nil
	}
	for _, loc := range candidates(locale) {
		for _, dir := range t.dirs {
			src, err := fs.ReadFile(dir, path.Join(loc, kind+".tmpl"))
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("courier: read template %s/%s: %w", loc, kind, err)
			}
			p, err := parse(kind, string(src))
			if err != nil {
				return nil, fmt.Errorf("courier: template %s/%s: %w", loc, kind, err)
			}
			t.cache[key] = p
			return p, nil
		}
	}
	return nil, fmt.Errorf("courier: no template for kind %q", kind)
}

func parse(name, src string) (*parsed, error) {
	text, err := texttemplate.New(name).Option("missingkey=zero").Parse(src)
	if err != nil {
		return nil, err
	}
	html, err := htmltemplate.New(name).Option("missingkey=zero").Parse(src)
	if err != nil {
		return nil, err
	}
	for _, n := range []string{"subject", "text"} {
		if text.Lookup(n) == nil {
			return nil, fmt.Errorf("defines no %q", n)
		}
	}
	if html.Lookup("html") == nil {
		return nil, errors.New(`defines no "html"`)
	}
	return &parsed{text: text, html: html}, nil
}
