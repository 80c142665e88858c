package domain

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// A user's profile (Barong's Profile, with company, VAT id and locale as first-class fields) and
// their settings. Every field of a profile is personal data: it lives only in the data of the
// events below and in read models, as the email does, so that the erasure of a user can seal or
// destroy it with the rest.

// ProfileState is where a profile stands in its review, Barong's states.
type ProfileState string

// The states of a profile. A user edits a drafted profile and submits it (confirm=true); an
// administrator verifies or rejects a submitted one. A rejected profile is replaced by a new one.
const (
	ProfileDrafted   ProfileState = "drafted"
	ProfileSubmitted ProfileState = "submitted"
	ProfileVerified  ProfileState = "verified"
	ProfileRejected  ProfileState = "rejected"
)

// ParseProfileState returns the state of that name, or ErrProfileStateInvalid.
func ParseProfileState(s string) (ProfileState, error) {
	switch st := ProfileState(s); st {
	case ProfileDrafted, ProfileSubmitted, ProfileVerified, ProfileRejected:
		return st, nil
	}
	return "", fmt.Errorf("%w: %q", ErrProfileStateInvalid, s)
}

// Limits of profile fields.
const (
	MaxProfileFieldBytes    = 255
	MaxProfileMetadataBytes = 4 << 10
	MaxUserSettingsBytes    = 4 << 10
)

// Errors of profiles.
var (
	// ErrProfileInvalid: a profile field is malformed; the *ProfileFieldError that wraps it names
	// the field.
	ErrProfileInvalid = errors.New("domain: invalid profile field")
	// ErrProfileStateInvalid: not one of drafted, submitted, verified, rejected.
	ErrProfileStateInvalid = errors.New("domain: invalid profile state")
	// ErrProfileExists: the user has a profile that is not rejected; they update it instead.
	ErrProfileExists = errors.New("domain: profile already exists")
	// ErrProfileNotFound: the user has no profile yet.
	ErrProfileNotFound = errors.New("domain: no profile")
	// ErrProfileNotEditable: the profile was submitted (or reviewed); the user can no longer edit it.
	ErrProfileNotEditable = errors.New("domain: profile is not a draft")
	// ErrSettingsInvalid: the settings are not a JSON object of at most MaxUserSettingsBytes.
	ErrSettingsInvalid = errors.New("domain: invalid user settings")
)

// ProfileFieldError says which profile field was refused; it matches ErrProfileInvalid.
type ProfileFieldError struct {
	Field  string // the field's name in the API: first_name, country, dob ...
	Reason string
}

func (e *ProfileFieldError) Error() string {
	return fmt.Sprintf("%v: %s %s", ErrProfileInvalid, e.Field, e.Reason)
}

// Is makes a ProfileFieldError match ErrProfileInvalid.
func (e *ProfileFieldError) Is(target error) bool { return target == ErrProfileInvalid }

// ProfileData is a profile's content, as its events carry it. Country is ISO 3166-1 alpha-2 in
// upper case, DOB a date (YYYY-MM-DD), Locale a BCP 47 tag, Metadata a JSON object.
type ProfileData struct {
	FirstName string          `json:"first_name,omitempty" personal:"true"`
	LastName  string          `json:"last_name,omitempty" personal:"true"`
	DOB       string          `json:"dob,omitempty" personal:"true"`
	Address   string          `json:"address,omitempty" personal:"true"`
	Postcode  string          `json:"postcode,omitempty" personal:"true"`
	City      string          `json:"city,omitempty" personal:"true"`
	Country   string          `json:"country,omitempty"`
	Company   string          `json:"company,omitempty" personal:"true"`
	VATID     string          `json:"vat_id,omitempty" personal:"true"`
	Locale    string          `json:"locale,omitempty"`
	Metadata  json.RawMessage `json:"metadata,omitempty" personal:"true"`
}

func (d ProfileData) equal(o ProfileData) bool {
	a, _ := json.Marshal(d)
	b, _ := json.Marshal(o)
	return bytes.Equal(a, b)
}

// ProfilePatch is a partial profile: a nil field is kept as it is, a non-nil one replaces it (an
// empty string clears it).
type ProfilePatch struct {
	FirstName, LastName, DOB, Address, Postcode, City, Country, Company, VATID, Locale *string
	Metadata                                                                           *json.RawMessage
}

// apply returns d with the patch's fields set, normalised and checked at now (for the birth date).
func (p ProfilePatch) apply(d ProfileData, now time.Time) (ProfileData, error) {
	text := []struct {
		name string
		in   *string
		out  *string
		norm func(string) (string, string)
	}{
		{"first_name", p.FirstName, &d.FirstName, nil},
		{"last_name", p.LastName, &d.LastName, nil},
		{"dob", p.DOB, &d.DOB, func(s string) (string, string) { return checkDOB(s, now) }},
		{"address", p.Address, &d.Address, nil},
		{"postcode", p.Postcode, &d.Postcode, checkPostcode},
		{"city", p.City, &d.City, nil},
		{"country", p.Country, &d.Country, checkCountry},
		{"company", p.Company, &d.Company, nil},
		{"vat_id", p.VATID, &d.VATID, checkVATID},
		{"locale", p.Locale, &d.Locale, checkLocale},
	}
	for _, f := range text {
		if f.in == nil {
			continue
		}
		s := strings.TrimSpace(*f.in)
		if reason := checkProfileText(s); reason != "" {
			return d, &ProfileFieldError{Field: f.name, Reason: reason}
		}
		if s != "" && f.norm != nil {
			var reason string
			if s, reason = f.norm(s); reason != "" {
				return d, &ProfileFieldError{Field: f.name, Reason: reason}
			}
		}
		*f.out = s
	}
	if p.Metadata != nil {
		m, err := jsonObject(*p.Metadata, MaxProfileMetadataBytes)
		if err != nil {
			return d, &ProfileFieldError{Field: "metadata", Reason: err.Error()}
		}
		d.Metadata = m
	}
	return d, nil
}

func checkProfileText(s string) string {
	if len(s) > MaxProfileFieldBytes {
		return fmt.Sprintf("is longer than %d bytes", MaxProfileFieldBytes)
	}
	if !utf8.ValidString(s) {
		return "is not UTF-8"
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return "holds control characters"
		}
	}
	return ""
}

func checkDOB(s string, now time.Time) (string, string) {
	d, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return "", "is not a date (YYYY-MM-DD)"
	}
	if d.Year() < 1900 || d.After(now) {
		return "", "is not a birth date"
	}
	return d.Format(time.DateOnly), ""
}

func checkPostcode(s string) (string, string) {
	if len(s) > 16 {
		return "", "is longer than 16 characters"
	}
	for _, r := range s {
		if !(r == ' ' || r == '-' || r < 128 && (unicode.IsLetter(r) || unicode.IsDigit(r))) {
			return "", "holds characters other than letters, digits, spaces and dashes"
		}
	}
	return strings.ToUpper(s), ""
}

// iso3166 lists the 249 officially assigned ISO 3166-1 alpha-2 codes, space-separated: no
// reserved, transitional or withdrawn code (UK, EU, YU, XK ...).
const iso3166 = "" +
	"AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE " +
	"BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ CA CC CD " +
	"CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM " +
	"DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF " +
	"GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU " +
	"ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN " +
	"KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME " +
	"MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA " +
	"NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM " +
	"PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI " +
	"SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK " +
	"TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI " +
	"VN VU WF WS YE YT ZA ZM ZW"

// checkCountry accepts an assigned ISO 3166-1 alpha-2 code, in either case.
func checkCountry(s string) (string, string) {
	s = strings.ToUpper(s)
	if len(s) != 2 || s[0] < 'A' || s[0] > 'Z' || s[1] < 'A' || s[1] > 'Z' || !strings.Contains(iso3166, s+" ") && !strings.HasSuffix(iso3166, s) {
		return "", "is not an assigned ISO 3166-1 alpha-2 code"
	}
	return s, ""
}

// checkVATID accepts an EU-style VAT number: a two-letter country prefix and 2 to 13 letters or
// digits, spaces, dots and dashes dropped.
func checkVATID(s string) (string, string) {
	s = strings.ToUpper(strings.NewReplacer(" ", "", ".", "", "-", "").Replace(s))
	if len(s) < 4 || len(s) > 15 {
		return "", "is not a VAT number"
	}
	for i, r := range s {
		letter, digit := r >= 'A' && r <= 'Z', r >= '0' && r <= '9'
		if i < 2 && !letter || !letter && !digit {
			return "", "is not a VAT number"
		}
	}
	return s, ""
}

// checkLocale checks the shape of a BCP 47 tag (RFC 5646: a 2-3 or 5-8 letter language, then
// subtags of 1-8 letters or digits); the command layer canonicalises it against the registry.
func checkLocale(s string) (string, string) {
	parts := strings.Split(s, "-")
	if len(s) > 35 {
		return "", "is not a BCP 47 language tag"
	}
	for i, p := range parts {
		if len(p) == 0 || len(p) > 8 {
			return "", "is not a BCP 47 language tag"
		}
		for _, r := range p {
			letter, digit := r < 128 && unicode.IsLetter(r), r >= '0' && r <= '9'
			if i == 0 && !letter || !letter && !digit {
				return "", "is not a BCP 47 language tag"
			}
		}
		if i == 0 && (len(p) == 4 || len(p) == 1) {
			return "", "is not a BCP 47 language tag"
		}
	}
	return s, ""
}

// jsonObject compacts a JSON object of at most max bytes; empty or null is no object (nil).
func jsonObject(raw json.RawMessage, max int) (json.RawMessage, error) {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 || string(t) == "null" {
		return nil, nil
	}
	if t[0] != '{' || !json.Valid(t) {
		return nil, errors.New("is not a JSON object")
	}
	var b bytes.Buffer
	if err := json.Compact(&b, t); err != nil {
		return nil, errors.New("is not a JSON object")
	}
	if b.Len() > max {
		return nil, fmt.Errorf("is larger than %d bytes", max)
	}
	if b.String() == "{}" {
		return nil, nil
	}
	return b.Bytes(), nil
}

// profile is a user's current profile.
type profile struct {
	data  ProfileData
	state ProfileState
}

// ProfileCreated: the user started a profile (a new one replaces a rejected one), in State
// drafted, or submitted when they confirmed it at once.
type ProfileCreated struct {
	ProfileData
	State ProfileState `json:"state"`
}

// ProfileUpdated: the profile's content is now ProfileData, whole (fields not sent were kept).
type ProfileUpdated struct {
	ProfileData
}

// ProfileStateChanged: the user submitted the profile, or an administrator reviewed it.
type ProfileStateChanged struct {
	From ProfileState `json:"from"`
	To   ProfileState `json:"to"`
}

// UserSettingsChanged: the user's settings (a JSON object; absent: none) are now Settings.
type UserSettingsChanged struct {
	Settings json.RawMessage `json:"settings,omitempty" personal:"true"`
}

func (ProfileCreated) EventType() string      { return "ProfileCreated" }
func (ProfileUpdated) EventType() string      { return "ProfileUpdated" }
func (ProfileStateChanged) EventType() string { return "ProfileStateChanged" }
func (UserSettingsChanged) EventType() string { return "UserSettingsChanged" }

// Profile returns the user's profile and its state; ok is false when they have none.
func (u *User) Profile() (data ProfileData, state ProfileState, ok bool) {
	if u.profile == nil {
		return ProfileData{}, "", false
	}
	return u.profile.data, u.profile.state, true
}

// CreateProfile starts the user's profile from p, submitted at once if submit. A user with a
// profile that is not rejected has ErrProfileExists. The user must be active.
func (u *User) CreateProfile(p ProfilePatch, submit bool, now time.Time) ([]Event, error) {
	if err := u.requireActive(); err != nil {
		return nil, err
	}
	if u.profile != nil && u.profile.state != ProfileRejected {
		return nil, fmt.Errorf("%w: user %s, %s", ErrProfileExists, u.id, u.profile.state)
	}
	d, err := p.apply(ProfileData{}, now)
	if err != nil {
		return nil, err
	}
	state := ProfileDrafted
	if submit {
		state = ProfileSubmitted
	}
	return u.record(ProfileCreated{ProfileData: d, State: state}), nil
}

// UpdateProfile changes the fields p sends, keeping the others, and submits the profile if submit.
// Only a drafted profile can be edited by its user (ErrProfileNotEditable otherwise); changing
// nothing and not submitting is ErrUnchanged.
func (u *User) UpdateProfile(p ProfilePatch, submit bool, now time.Time) ([]Event, error) {
	if err := u.requireActive(); err != nil {
		return nil, err
	}
	if u.profile == nil {
		return nil, fmt.Errorf("%w: user %s", ErrProfileNotFound, u.id)
	}
	if u.profile.state != ProfileDrafted {
		return nil, fmt.Errorf("%w: user %s, %s", ErrProfileNotEditable, u.id, u.profile.state)
	}
	d, err := p.apply(u.profile.data, now)
	if err != nil {
		return nil, err
	}
	var events []Event
	if !d.equal(u.profile.data) {
		events = append(events, ProfileUpdated{ProfileData: d})
	}
	if submit {
		events = append(events, ProfileStateChanged{From: ProfileDrafted, To: ProfileSubmitted})
	}
	if events == nil {
		return nil, fmt.Errorf("%w: same profile", ErrUnchanged)
	}
	return u.record(events...), nil
}

// ReviewProfile is an administrator's update of the profile: the fields p sends, and the state
// when to is not empty (verified or rejected, or back to drafted or submitted). It works in any
// state of the profile and of the account but closed; changing nothing is ErrUnchanged.
func (u *User) ReviewProfile(p ProfilePatch, to ProfileState, now time.Time) ([]Event, error) {
	if err := u.requireOpen(); err != nil {
		return nil, err
	}
	if u.profile == nil {
		return nil, fmt.Errorf("%w: user %s", ErrProfileNotFound, u.id)
	}
	if to != "" {
		if _, err := ParseProfileState(string(to)); err != nil {
			return nil, err
		}
	}
	d, err := p.apply(u.profile.data, now)
	if err != nil {
		return nil, err
	}
	var events []Event
	if !d.equal(u.profile.data) {
		events = append(events, ProfileUpdated{ProfileData: d})
	}
	if to != "" && to != u.profile.state {
		events = append(events, ProfileStateChanged{From: u.profile.state, To: to})
	}
	if events == nil {
		return nil, fmt.Errorf("%w: same profile", ErrUnchanged)
	}
	return u.record(events...), nil
}

// ChangeSettings replaces the user's settings, a JSON object apart from the profile: a user can
// change them whatever their profile's state. The same settings again is ErrUnchanged.
func (u *User) ChangeSettings(settings json.RawMessage) ([]Event, error) {
	if err := u.requireActive(); err != nil {
		return nil, err
	}
	s, err := jsonObject(settings, MaxUserSettingsBytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSettingsInvalid, err)
	}
	if bytes.Equal(s, u.settings) {
		return nil, fmt.Errorf("%w: same settings", ErrUnchanged)
	}
	return u.record(UserSettingsChanged{Settings: s}), nil
}

// Settings returns the user's settings (nil: none).
func (u *User) Settings() json.RawMessage { return u.settings }

func (u *User) applyProfile(e Event) {
	switch e := e.(type) {
	case ProfileCreated:
		u.profile = &profile{data: e.ProfileData, state: e.State}
	case ProfileUpdated:
		if u.profile != nil {
			u.profile.data = e.ProfileData
		}
	case ProfileStateChanged:
		if u.profile != nil {
			u.profile.state = e.To
		}
	case UserSettingsChanged:
		u.settings = e.Settings
	}
}
