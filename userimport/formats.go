package userimport

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/idlog/idlog/auth"
	"github.com/idlog/idlog/domain"
)

// Format is the layout of an import file's rows. Each format is read from NDJSON (one JSON object
// a line), a JSON array of objects, or CSV with a header row; the first byte tells which.
type Format string

// The formats.
const (
	// FormatIdlog is idlog's own layout, documented in README.md ("Importing users"): uid, email,
	// username, role, state, created_at, email_verified, login_disabled, labels, data,
	// password_hash and the profile fields first_name ... country.
	FormatIdlog Format = "idlog"
	// FormatBarong is an export of Barong's users table (uid, email, username, password_digest,
	// role, state, level, otp, data, created_at): level 1 and up means the email was verified,
	// state pending means active with the email not verified.
	FormatBarong Format = "barong"
	// FormatWekan is Wekan's users as its REST API (GET /api/users/:id) or mongoexport gives them:
	// _id, createdAt, username, emails[0], services.password.bcrypt (Meteor's bcrypt over the
	// SHA-256 of the password), isAdmin, loginDisabled.
	FormatWekan Format = "wekan"
)

// ParseFormat returns the format named name.
func ParseFormat(name string) (Format, error) {
	switch f := Format(name); f {
	case FormatIdlog, FormatBarong, FormatWekan:
		return f, nil
	}
	return "", fmt.Errorf("userimport: unknown format %q (want idlog, barong or wekan)", name)
}

// row is one user of the file, as read, before it is checked.
type row struct {
	line          int // of the file (NDJSON, CSV) or the index in a JSON array, from 1
	uid           string
	email         string
	username      string
	role          string
	state         string
	createdAt     time.Time
	emailVerified bool
	loginDisabled bool
	labels        []domain.Label
	data          json.RawMessage
	profile       *domain.ProfilePatch
	passwordHash  string // canonical (auth.CanonicalImportedHash)
	err           error  // why the row cannot be imported
}

// record is a row's fields by name, before mapping: CSV cells, or a JSON object's values (strings
// unquoted, anything else as its JSON text).
type record struct {
	line   int
	fields map[string]string
	object json.RawMessage // the JSON object, for formats that read nested fields
}

// maxLine bounds one NDJSON line.
const maxLine = 1 << 20

// readRecords splits data into records by its first byte: '{' NDJSON, '[' a JSON array, else CSV.
func readRecords(data []byte) ([]record, error) {
	trimmed := bytes.TrimLeft(data, " \t\r\n\ufeff")
	switch {
	case len(trimmed) == 0:
		return nil, nil
	case trimmed[0] == '[':
		var objects []json.RawMessage
		if err := json.Unmarshal(trimmed, &objects); err != nil {
			return nil, fmt.Errorf("userimport: the file is not a JSON array of objects: %w", err)
		}
		out := make([]record, len(objects))
		for i, o := range objects {
			out[i] = objectRecord(i+1, o)
		}
		return out, nil
	case trimmed[0] == '{':
		var out []record
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Buffer(make([]byte, 64<<10), maxLine)
		for line := 1; sc.Scan(); line++ {
			text := bytes.TrimSpace(sc.Bytes())
			if len(text) == 0 {
				continue
			}
			out = append(out, objectRecord(line, bytes.Clone(text)))
		}
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("userimport: read NDJSON: %w", err)
		}
		return out, nil
	}
	r := csv.NewReader(bytes.NewReader(trimmed))
	r.FieldsPerRecord = 0 // every row as long as the header
	header, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("userimport: read the CSV header: %w", err)
	}
	for i := range header {
		header[i] = strings.ToLower(strings.TrimSpace(header[i]))
	}
	var out []record
	for {
		cells, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		line, _ := r.FieldPos(0)
		if err != nil {
			return nil, fmt.Errorf("userimport: CSV: %w", err)
		}
		f := make(map[string]string, len(header))
		for i, h := range header {
			f[h] = cells[i]
		}
		out = append(out, record{line: line, fields: f})
	}
}

// objectRecord reads one JSON object; a malformed one becomes a record whose mapping fails.
func objectRecord(line int, o json.RawMessage) record {
	rec := record{line: line, object: o, fields: map[string]string{}}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(o, &m); err != nil {
		rec.fields = nil
		return rec
	}
	for k, v := range m {
		var s string
		switch {
		case json.Unmarshal(v, &s) == nil:
			rec.fields[strings.ToLower(k)] = s
		case string(v) == "null":
		default:
			rec.fields[strings.ToLower(k)] = string(v)
		}
	}
	return rec
}

// mapRecord turns a record into a row by the format's mapping; row.err says what is wrong.
func mapRecord(f Format, rec record) row {
	r := row{line: rec.line}
	if rec.fields == nil {
		r.err = errors.New("not a JSON object")
		return r
	}
	var err error
	switch f {
	case FormatWekan:
		err = mapWekan(&r, rec.object)
	case FormatBarong:
		err = mapFields(&r, rec.fields, true)
	default:
		err = mapFields(&r, rec.fields, false)
	}
	r.err = err
	return r
}

// profileFields are the profile's fields as columns, by their JSON name.
var profileFields = []string{"first_name", "last_name", "dob", "address", "postcode", "city", "country"}

// mapFields maps idlog's layout, and Barong's with barong.
func mapFields(r *row, f map[string]string, barong bool) error {
	hash := f["password_hash"]
	if barong {
		hash = f["password_digest"]
	}
	if err := setHash(r, hash); err != nil {
		return err
	}
	r.uid, r.email, r.username, r.role = f["uid"], f["email"], f["username"], f["role"]
	r.state = f["state"]
	var err error
	if r.createdAt, err = parseTime(f["created_at"]); err != nil {
		return err
	}
	if r.emailVerified, err = parseBool("email_verified", f["email_verified"]); err != nil {
		return err
	}
	if r.loginDisabled, err = parseBool("login_disabled", f["login_disabled"]); err != nil {
		return err
	}
	if barong {
		if r.state == "pending" { // Barong's "email not confirmed yet"
			r.state = ""
		}
		if lvl := f["level"]; lvl != "" {
			n, err := strconv.Atoi(lvl)
			if err != nil {
				return fmt.Errorf("level %q is not a number", lvl)
			}
			r.emailVerified = r.emailVerified || n >= 1
		}
		if otp, _ := parseBool("otp", f["otp"]); otp {
			// The TOTP secret lives in Barong's Vault, not in the table: the user sets it up again.
			r.labels = append(r.labels, domain.Label{Key: "otp_not_imported", Value: "true", Scope: domain.ScopePrivate})
		}
	}
	if d := f["data"]; d != "" && d != "{}" {
		if !json.Valid([]byte(d)) {
			return errors.New("data is not JSON")
		}
		r.data = json.RawMessage(d)
		if t := strings.TrimSpace(d); t != "null" && t[0] != '{' && t[0] != '[' {
			// idlog keeps data as an object or an array; a bare value is kept under one key.
			r.data, _ = json.Marshal(map[string]json.RawMessage{"barong_data": json.RawMessage(t)})
		}
	}
	if l := f["labels"]; l != "" {
		labels, err := parseLabels(l)
		if err != nil {
			return err
		}
		r.labels = append(r.labels, labels...)
	}
	// A nested "profile" object (NDJSON) or the profile's columns (CSV).
	fields := f
	if p := f["profile"]; p != "" {
		var nested map[string]string
		if err := json.Unmarshal([]byte(p), &nested); err != nil {
			return fmt.Errorf("profile: %v", err)
		}
		fields = nested
	}
	var patch domain.ProfilePatch
	set := false
	for _, name := range profileFields {
		v := fields[name]
		if v == "" {
			continue
		}
		set = true
		switch name {
		case "first_name":
			patch.FirstName = &v
		case "last_name":
			patch.LastName = &v
		case "dob":
			patch.DOB = &v
		case "address":
			patch.Address = &v
		case "postcode":
			patch.Postcode = &v
		case "city":
			patch.City = &v
		case "country":
			patch.Country = &v
		}
	}
	if set {
		r.profile = &patch
	}
	return nil
}

// wekanUser is the part of a Wekan user the import reads.
type wekanUser struct {
	ID        string          `json:"_id"`
	CreatedAt json.RawMessage `json:"createdAt"`
	Username  string          `json:"username"`
	Emails    []struct {
		Address  string `json:"address"`
		Verified bool   `json:"verified"`
	} `json:"emails"`
	Services struct {
		Password struct {
			Bcrypt string `json:"bcrypt"`
		} `json:"password"`
	} `json:"services"`
	IsAdmin       bool `json:"isAdmin"`
	LoginDisabled bool `json:"loginDisabled"`
	Profile       struct {
		Fullname string `json:"fullname"`
	} `json:"profile"`
}

func mapWekan(r *row, o json.RawMessage) error {
	var w wekanUser
	if err := json.Unmarshal(o, &w); err != nil {
		return fmt.Errorf("not a Wekan user: %v", err)
	}
	if w.Services.Password.Bcrypt == "" {
		return errors.New("no services.password.bcrypt (a user without a password cannot be imported)")
	}
	if !strings.HasPrefix(w.Services.Password.Bcrypt, "$2") {
		return fmt.Errorf("%w: services.password.bcrypt is not a bcrypt hash", auth.ErrUnsupportedHash)
	}
	// Meteor hashes the hex SHA-256 of the password with bcrypt.
	if err := setHash(r, auth.PrefixMeteorBcrypt+strings.TrimPrefix(w.Services.Password.Bcrypt, "$")); err != nil {
		return err
	}
	if len(w.Emails) == 0 {
		return errors.New("no emails[0].address")
	}
	r.email, r.emailVerified, r.username = w.Emails[0].Address, w.Emails[0].Verified, w.Username
	r.loginDisabled = w.LoginDisabled
	if w.IsAdmin {
		r.role = domain.RoleAdmin.String()
	}
	created := string(w.CreatedAt)
	var date struct {
		Date json.RawMessage `json:"$date"` // mongoexport's extended JSON
	}
	if json.Unmarshal(w.CreatedAt, &date) == nil && date.Date != nil {
		created = string(date.Date)
	}
	var err error
	if r.createdAt, err = parseTime(strings.Trim(created, `"`)); err != nil {
		return err
	}
	d := map[string]string{"wekan_id": w.ID}
	if w.Profile.Fullname != "" {
		d["fullname"] = w.Profile.Fullname
	}
	r.data, _ = json.Marshal(d)
	return nil
}

// setHash stores the canonical form of an imported hash.
func setHash(r *row, raw string) error {
	h, err := auth.CanonicalImportedHash(raw)
	if err != nil {
		return fmt.Errorf("password hash: %w", err)
	}
	r.passwordHash = h
	return nil
}

// timeLayouts are the spellings of created_at the import reads (RFC 3339, SQL dumps).
var timeLayouts = []string{time.RFC3339Nano, "2006-01-02 15:04:05.999999999Z07:00", "2006-01-02 15:04:05.999999999", "2006-01-02T15:04:05.999999999"}

// parseTime reads created_at; empty is the zero time (the import's own time is taken), a number
// is milliseconds since 1970 (mongoexport).
func parseTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.UnixMilli(ms).UTC(), nil
	}
	for _, l := range timeLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("created_at %q is not a time (RFC 3339 or 2006-01-02 15:04:05)", s)
}

func parseBool(name, s string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "0", "false", "f", "no":
		return false, nil
	case "1", "true", "t", "yes":
		return true, nil
	}
	return false, fmt.Errorf("%s %q is not a boolean", name, s)
}

// parseLabels reads a JSON array of {"key", "value", "scope", "description"}; scope defaults to
// public, as Barong's.
func parseLabels(s string) ([]domain.Label, error) {
	var in []struct {
		Key, Value, Scope, Description string
	}
	if err := json.Unmarshal([]byte(s), &in); err != nil {
		return nil, fmt.Errorf("labels: want a JSON array of {key, value, scope}: %v", err)
	}
	out := make([]domain.Label, 0, len(in))
	for _, l := range in {
		if l.Scope == "" {
			l.Scope = domain.ScopePublic.String()
		}
		scope, err := domain.ParseLabelScope(l.Scope)
		if err != nil {
			return nil, fmt.Errorf("label %s: %w", l.Key, err)
		}
		out = append(out, domain.Label{Key: l.Key, Value: l.Value, Scope: scope, Description: l.Description})
	}
	return out, nil
}
