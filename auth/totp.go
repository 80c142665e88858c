package auth

import (
	"bytes"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"image/png"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

// ErrOTPCodeInvalid: a TOTP code is malformed or matches none of the accepted time steps.
var ErrOTPCodeInvalid = errors.New("auth: invalid two-factor code")

// TOTP settings: RFC 6238 as authenticator apps expect them. They are fixed because the apps
// ignore most other values.
const (
	TOTPPeriod = 30 // seconds per time step
	TOTPDigits = 6
	// TOTPIssuer names idlog in authenticator apps.
	TOTPIssuer = "idlog"
	qrCodeSize = 256 // pixels
)

var totpOpts = totp.ValidateOpts{Period: TOTPPeriod, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}

// TOTPKey is a new TOTP secret and the two ways to give it to an authenticator app.
type TOTPKey struct {
	Secret string // base32, unpadded: seal it (Sealer) before storing, never log it
	URL    string // otpauth://totp/idlog:<account>?secret=...&issuer=idlog&...
	QRCode string // the URL as a PNG QR code, base64 (standard, padded)
}

// GenerateTOTP makes a random 160-bit secret for account (the user's email), issued by
// TOTPIssuer, with 30-second steps, 6 digits and SHA-1.
func GenerateTOTP(account string) (TOTPKey, error) {
	key, err := totp.Generate(totp.GenerateOpts{
		Issuer: TOTPIssuer, AccountName: account, Period: TOTPPeriod, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1,
	})
	if err != nil {
		return TOTPKey{}, fmt.Errorf("auth: generate TOTP secret: %w", err)
	}
	img, err := key.Image(qrCodeSize, qrCodeSize)
	if err != nil {
		return TOTPKey{}, fmt.Errorf("auth: TOTP QR code: %w", err)
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		return TOTPKey{}, fmt.Errorf("auth: TOTP QR code: %w", err)
	}
	return TOTPKey{Secret: key.Secret(), URL: key.URL(), QRCode: base64.StdEncoding.EncodeToString(b.Bytes())}, nil
}

// TOTPStep is the time step of t: Unix seconds / 30.
func TOTPStep(t time.Time) int64 {
	s := t.Unix()
	if s < 0 {
		return (s - TOTPPeriod + 1) / TOTPPeriod // floor, for completeness
	}
	return s / TOTPPeriod
}

// TOTPCode is the code of secret at time step step.
func TOTPCode(secret string, step int64) (string, error) {
	code, err := totp.GenerateCodeCustom(secret, time.Unix(step*TOTPPeriod, 0), totpOpts)
	if err != nil {
		return "", fmt.Errorf("auth: TOTP code: %w", err)
	}
	return code, nil
}

// ValidateTOTP checks code (6 digits; spaces are ignored) against secret at time at, tolerating
// one step of clock drift either way, and returns the step it matched: the domain refuses a step
// that is not after the last accepted one, so a code works once only. No match, or a malformed
// code, is ErrOTPCodeInvalid.
func ValidateTOTP(secret, code string, at time.Time) (step int64, err error) {
	code = strings.ReplaceAll(code, " ", "")
	if len(code) != TOTPDigits || strings.Trim(code, "0123456789") != "" {
		return 0, fmt.Errorf("%w: want %d digits", ErrOTPCodeInvalid, TOTPDigits)
	}
	now := TOTPStep(at)
	// Every candidate is computed and compared, so the time taken does not tell which matched.
	match, found := int64(0), false
	for _, s := range []int64{now + 1, now - 1, now} {
		want, err := TOTPCode(secret, s)
		if err != nil {
			return 0, err
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
			match, found = s, true // the current step wins if a code is valid at several (iterated last)
		}
	}
	if !found {
		return 0, fmt.Errorf("%w: no match within one step of %s", ErrOTPCodeInvalid, at.UTC().Format(time.RFC3339))
	}
	return match, nil
}
