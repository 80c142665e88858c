package domain

import (
	"errors"
	"fmt"
	"time"
)

// A user's phones, Barong's Phone: numbers in E.164 (the command layer parses and normalises
// what the user typed), each proven by a one-time code sent to it. The code lives in events only
// as an encoded argon2id hash (a six-digit code under a fast hash would be read back from the
// log by trying every code). A verified phone gives the private label phone=verified, the second
// rung of DefaultLevels. The number is personal data: it travels in the fields named
// phone_number only, so that sealing personal data can find it.

// PhoneLabelKey is the label a verified phone gives (with LabelValueVerified).
const PhoneLabelKey = "phone"

// MaxPhones bounds the phones of one user.
const MaxPhones = 5

// Errors of phones.
var (
	// ErrPhoneInvalid: the number is not a valid phone number (E.164 once normalised).
	ErrPhoneInvalid = errors.New("domain: invalid phone number")
	// ErrPhoneExists: the user has this number already.
	ErrPhoneExists = errors.New("domain: phone number already added")
	// ErrPhoneLimit: the user has MaxPhones phones already.
	ErrPhoneLimit = errors.New("domain: too many phones")
	// ErrPhoneNotFound: the user has no such number.
	ErrPhoneNotFound = errors.New("domain: no such phone")
	// ErrPhoneAlreadyVerified: the number was verified already; no code is needed any more.
	ErrPhoneAlreadyVerified = errors.New("domain: phone already verified")
	// ErrPhoneCodeInvalid: the code does not match the last one sent to the number, or none is
	// pending.
	ErrPhoneCodeInvalid = errors.New("domain: invalid phone verification code")
	// ErrPhoneCodeExpired: the code matches, but expired.
	ErrPhoneCodeExpired = errors.New("domain: phone verification code expired")
)

// Phone is one of a user's phones.
type Phone struct {
	Number     string // E.164
	Country    string // ISO 3166-1 alpha-2 region of the number
	AddedAt    time.Time
	VerifiedAt time.Time // zero until verified
}

type phone struct {
	Phone
	code *pendingToken // the last code sent, until used or replaced
}

// PhoneAdded: the user added the number PhoneNumber (E.164, personal data) of Country.
type PhoneAdded struct {
	PhoneNumber string    `json:"phone_number" personal:"true"`
	Country     string    `json:"country"`
	At          time.Time `json:"at"`
}

// PhoneCodeSent: a one-time code was sent to PhoneNumber; CodeHash is its encoded argon2id hash,
// valid until ExpiresAt and replacing any earlier code for that number.
type PhoneCodeSent struct {
	PhoneNumber string    `json:"phone_number" personal:"true"`
	CodeHash    string    `json:"code_hash"`
	ExpiresAt   time.Time `json:"expires_at"`
}

// PhoneVerified: the user proved they hold PhoneNumber with the code sent to it.
type PhoneVerified struct {
	PhoneNumber string    `json:"phone_number" personal:"true"`
	At          time.Time `json:"at"`
}

func (PhoneAdded) EventType() string    { return "PhoneAdded" }
func (PhoneCodeSent) EventType() string { return "PhoneCodeSent" }
func (PhoneVerified) EventType() string { return "PhoneVerified" }

// checkE164 accepts "+" and 8 to 15 digits, the first not 0: what the command layer's parser
// produces.
func checkE164(n string) error {
	if len(n) < 9 || len(n) > 16 || n[0] != '+' || n[1] == '0' {
		return fmt.Errorf("%w: %d characters, not E.164", ErrPhoneInvalid, len(n))
	}
	for i := 1; i < len(n); i++ {
		if n[i] < '0' || n[i] > '9' {
			return fmt.Errorf("%w: not E.164", ErrPhoneInvalid)
		}
	}
	return nil
}

func checkCodeRequest(codeHash string, expiresAt time.Time) error {
	if err := checkPasswordHash(codeHash); err != nil {
		return fmt.Errorf("%w: phone code hash is not an encoded hash", ErrInvalidArgument)
	}
	return checkTime("expiry", expiresAt)
}

// phoneOf is the user's phone of that number, nil if none. It points into u.phones: apply
// changes it there (Clone copies the slice; a pending code is replaced, never changed in place).
func (u *User) phoneOf(number string) *phone {
	for i := range u.phones {
		if u.phones[i].Number == number {
			return &u.phones[i]
		}
	}
	return nil
}

// AddPhone adds the number (E.164) of country and records that a code, of hash codeHash and
// valid until expiresAt, was sent to it. A number the user has is ErrPhoneExists.
func (u *User) AddPhone(number, country, codeHash string, expiresAt, now time.Time) ([]Event, error) {
	if err := u.requireActive(); err != nil {
		return nil, err
	}
	if err := checkE164(number); err != nil {
		return nil, err
	}
	if c, reason := checkCountry(country); reason != "" {
		return nil, fmt.Errorf("%w: country %s", ErrPhoneInvalid, reason)
	} else {
		country = c
	}
	if err := checkCodeRequest(codeHash, expiresAt); err != nil {
		return nil, err
	}
	if u.phoneOf(number) != nil {
		return nil, fmt.Errorf("%w: user %s", ErrPhoneExists, u.id)
	}
	if len(u.phones) >= MaxPhones {
		return nil, fmt.Errorf("%w: user %s has %d", ErrPhoneLimit, u.id, len(u.phones))
	}
	return u.record(
		PhoneAdded{PhoneNumber: number, Country: country, At: now.UTC()},
		PhoneCodeSent{PhoneNumber: number, CodeHash: codeHash, ExpiresAt: expiresAt.UTC()},
	), nil
}

// SendPhoneCode records that a new code (codeHash, valid until expiresAt) was sent to the user's
// number, replacing the pending one. A verified number is ErrPhoneAlreadyVerified.
func (u *User) SendPhoneCode(number, codeHash string, expiresAt time.Time) ([]Event, error) {
	if err := u.requireActive(); err != nil {
		return nil, err
	}
	if err := checkCodeRequest(codeHash, expiresAt); err != nil {
		return nil, err
	}
	p := u.phoneOf(number)
	if p == nil {
		return nil, fmt.Errorf("%w: user %s", ErrPhoneNotFound, u.id)
	}
	if !p.VerifiedAt.IsZero() {
		return nil, fmt.Errorf("%w: user %s", ErrPhoneAlreadyVerified, u.id)
	}
	return u.record(PhoneCodeSent{PhoneNumber: number, CodeHash: codeHash, ExpiresAt: expiresAt.UTC()}), nil
}

// PhoneCodeHash is the hash of the code pending for the user's number, for the command layer to
// check a code against; ok is false when the user has no such number or no code is pending.
func (u *User) PhoneCodeHash(number string) (hash string, ok bool) {
	p := u.phoneOf(number)
	if p == nil || p.code == nil {
		return "", false
	}
	return p.code.hash, true
}

// VerifyPhone proves the user's number: matches, given the pending code's hash, says whether the
// code the user typed is that code. A wrong code, or none pending, is ErrPhoneCodeInvalid; an
// expired one ErrPhoneCodeExpired. The code is spent, and the user gets the private label
// phone=verified (and LevelChanged when that raises their level).
func (u *User) VerifyPhone(number string, matches func(codeHash string) bool, now time.Time) ([]Event, error) {
	if err := u.requireActive(); err != nil {
		return nil, err
	}
	p := u.phoneOf(number)
	if p == nil {
		return nil, fmt.Errorf("%w: user %s", ErrPhoneNotFound, u.id)
	}
	if !p.VerifiedAt.IsZero() {
		return nil, fmt.Errorf("%w: user %s", ErrPhoneAlreadyVerified, u.id)
	}
	if p.code == nil || !matches(p.code.hash) {
		return nil, fmt.Errorf("%w: user %s", ErrPhoneCodeInvalid, u.id)
	}
	if !now.Before(p.code.expiresAt) {
		return nil, fmt.Errorf("%w: at %s", ErrPhoneCodeExpired, p.code.expiresAt.Format(time.RFC3339))
	}
	events := u.record(PhoneVerified{PhoneNumber: number, At: now.UTC()})
	return append(events, u.setPrivateLabel(PhoneLabelKey, LabelValueVerified)...), nil
}

// Phones lists the user's phones in the order they were added.
func (u *User) Phones() []Phone {
	out := make([]Phone, len(u.phones))
	for i, p := range u.phones {
		out[i] = p.Phone
	}
	return out
}

func (u *User) applyPhone(e Event) {
	switch e := e.(type) {
	case PhoneAdded:
		u.phones = append(u.phones, phone{Phone: Phone{Number: e.PhoneNumber, Country: e.Country, AddedAt: e.At}})
	case PhoneCodeSent:
		if p := u.phoneOf(e.PhoneNumber); p != nil {
			p.code = &pendingToken{hash: e.CodeHash, expiresAt: e.ExpiresAt}
		}
	case PhoneVerified:
		if p := u.phoneOf(e.PhoneNumber); p != nil {
			p.VerifiedAt, p.code = e.At, nil
		}
	}
}
