package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/idlog/idlog/auth"
	"github.com/idlog/idlog/commands"
	"github.com/idlog/idlog/domain"
	"github.com/idlog/idlog/eventstore"
	"github.com/idlog/idlog/projections"
)

// The one place where errors of domain, auth and commands become HTTP statuses and stable error
// codes. A code is Barong's: <module>.<resource>.<reason>. Most reasons are the same on every
// route and get the route's scope in front (identity.user.invalid_email on sign-up,
// resource.user.invalid_email on an email change); a rule with a scope applies to that scope only,
// and a code without a leading dot is used as it is.

// Scopes of the account routes: the first two parts of their error codes.
const (
	scopeIdentityUser     = "identity.user"
	scopeIdentitySession  = "identity.session"
	scopeIdentityPassword = "identity.password"
	scopeResourceUser     = "resource.user"
	scopeResourcePassword = "resource.password"
	scopeResourceOTP      = "resource.otp"
	scopeResourceProfile  = "resource.profile"
	scopeAdminProfile     = "admin.profile"
)

type errorRule struct {
	scope  string // "" for every scope
	err    error
	status int
	code   string // ".reason" is appended to the scope
}

var errorRules = []errorRule{
	// Refresh: before the sign-in rules, as a refused refresh tells nothing of its user's state.
	{scopeIdentitySession, domain.ErrRefreshTokenReused, http.StatusUnauthorized, "identity.session.refresh_token_reused"},
	{scopeIdentitySession, domain.ErrRefreshTokenInvalid, http.StatusUnauthorized, "identity.session.invalid_refresh_token"},
	// Sessions in lists: one that is not open is not there.
	{scopeResourceSession, domain.ErrSessionNotFound, http.StatusNotFound, "resource.session.not_found"},
	{scopeAdminUser, domain.ErrSessionNotFound, http.StatusNotFound, "admin.session.not_found"},

	// Sign-in: Barong's codes and statuses.
	{scopeIdentitySession, commands.ErrInvalidCredentials, http.StatusUnauthorized, "identity.session.invalid_params"},
	{scopeIdentitySession, domain.ErrUserNotActive, http.StatusUnauthorized, "identity.session.not_active"},
	{scopeIdentitySession, domain.ErrLoginDisabled, http.StatusUnauthorized, "identity.session.not_active"},
	{scopeIdentitySession, domain.ErrOTPRequired, http.StatusForbidden, "identity.session.missing_otp"},
	{scopeIdentitySession, auth.ErrOTPCodeInvalid, http.StatusForbidden, "identity.session.invalid_otp"},
	{scopeIdentitySession, domain.ErrOTPReplayed, http.StatusForbidden, "identity.session.invalid_otp"},

	// Barong's admin code for a user that is not there (or closed for good).
	{scopeAdminUser, commands.ErrUserNotFound, http.StatusNotFound, "admin.user.doesnt_exist"},
	{scopeAdminUser, projections.ErrNotFound, http.StatusNotFound, "admin.user.doesnt_exist"},
	{scopeAdminUser, domain.ErrAccountClosed, http.StatusNotFound, "admin.user.doesnt_exist"},
	// Erasure with an event store that does not seal personal data (EventStoreDB).
	{scopeAdminUser, commands.ErrErasureUnavailable, http.StatusServiceUnavailable, "admin.personal_data.erasure_unavailable"},

	// API keys: Barong's codes; 2FA is required.
	{scopeResourceAPIKey, domain.ErrOTPNotEnabled, http.StatusBadRequest, "resource.api_key.2fa_disabled"},
	{scopeResourceAPIKey, auth.ErrOTPCodeInvalid, http.StatusUnprocessableEntity, "resource.api_key.invalid_totp"},
	{scopeResourceAPIKey, domain.ErrOTPReplayed, http.StatusUnprocessableEntity, "resource.api_key.invalid_totp"},
	{"", domain.ErrAPIKeyNotFound, http.StatusNotFound, ".doesnt_exist"},
	{"", domain.ErrAPIKeyExists, http.StatusUnprocessableEntity, ".kid_taken"},
	{"", domain.ErrAPIKeyLimit, http.StatusUnprocessableEntity, ".limit_reached"},
	{"", domain.ErrAPIKeyInvalid, http.StatusUnprocessableEntity, ".invalid_params"},

	// The access policy (gatekeeper.go): a bad field is <scope>.invalid_<field>, see errorStatus.
	{"", domain.ErrPermissionNotFound, http.StatusNotFound, ".doesnt_exist"},
	{"", domain.ErrRestrictionNotFound, http.StatusNotFound, ".doesnt_exist"},
	{"", domain.ErrRestrictionExists, http.StatusUnprocessableEntity, ".already_exists"},
	{"", domain.ErrPolicyFull, http.StatusUnprocessableEntity, ".limit_reached"},

	// Profiles: Barong's codes (a bad field is <scope>.invalid_<field>, see errorStatus).
	{"", domain.ErrProfileExists, http.StatusConflict, ".exist"},
	{"", domain.ErrProfileNotFound, http.StatusNotFound, ".doesnt_exist"},
	{"", domain.ErrProfileNotEditable, http.StatusUnprocessableEntity, ".not_editable"},
	{"", domain.ErrProfileStateInvalid, http.StatusUnprocessableEntity, ".invalid_state"},
	{"", domain.ErrSettingsInvalid, http.StatusUnprocessableEntity, ".invalid_settings"},
	{scopeAdminProfile, commands.ErrUserNotFound, http.StatusNotFound, "admin.user.doesnt_exist"},

	// KYC: phones, documents, data storage (kyc.go), with Barong's statuses.
	{"", domain.ErrPhoneInvalid, http.StatusUnprocessableEntity, ".invalid_num"},
	{"", domain.ErrPhoneExists, http.StatusBadRequest, ".number_exist"},
	{"", domain.ErrPhoneLimit, http.StatusUnprocessableEntity, ".too_many_phones"},
	{"", domain.ErrPhoneNotFound, http.StatusNotFound, ".doesnt_exist"},
	{"", domain.ErrPhoneAlreadyVerified, http.StatusBadRequest, ".already_verified"},
	{"", domain.ErrPhoneCodeInvalid, http.StatusNotFound, ".verification_invalid"},
	{"", domain.ErrPhoneCodeExpired, http.StatusNotFound, ".verification_invalid"},
	{"", domain.ErrDocumentLimit, http.StatusUnprocessableEntity, ".too_many_documents"},
	{"", domain.ErrDocumentNotFound, http.StatusNotFound, ".doesnt_exist"},
	{"", domain.ErrDocumentStateInvalid, http.StatusUnprocessableEntity, ".invalid_state"},
	{"", domain.ErrDocumentReasonInvalid, http.StatusUnprocessableEntity, ".invalid_reason"},
	{"", domain.ErrDataStorageTitleInvalid, http.StatusUnprocessableEntity, ".invalid_title"},
	{"", domain.ErrDataStorageInvalid, http.StatusUnprocessableEntity, ".invalid_data"},
	{"", domain.ErrDataStorageExists, http.StatusUnprocessableEntity, ".duplicate_title"},
	{"", domain.ErrDataStorageNotFound, http.StatusNotFound, ".doesnt_exist"},
	{"", domain.ErrDataStorageLimit, http.StatusUnprocessableEntity, ".too_many_records"},
	{scopeAdminDocument, commands.ErrUserNotFound, http.StatusNotFound, "admin.user.doesnt_exist"},
	{scopeAdminDataStorage, commands.ErrUserNotFound, http.StatusNotFound, "admin.user.doesnt_exist"},

	{"", commands.ErrThrottled, http.StatusTooManyRequests, ".too_many_attempts"},
	{"", commands.ErrEmailTaken, http.StatusConflict, ".email_taken"},
	{"", commands.ErrUsernameTaken, http.StatusConflict, ".username_taken"},
	{"", commands.ErrConflict, http.StatusConflict, ".conflict"},
	{"", commands.ErrIdempotencyKeyReused, http.StatusUnprocessableEntity, "idempotency.key_reused"},

	{"", domain.ErrEmailInvalid, http.StatusUnprocessableEntity, ".invalid_email"},
	{"", domain.ErrUsernameInvalid, http.StatusUnprocessableEntity, ".invalid_username"},
	{"", domain.ErrRefIDInvalid, http.StatusUnprocessableEntity, ".invalid_referral_format"},
	// After ErrRefIDInvalid, which wraps it: a user id an administrator typed.
	{"", domain.ErrUserIDInvalid, http.StatusUnprocessableEntity, ".invalid_uid"},
	{"", domain.ErrRoleInvalid, http.StatusUnprocessableEntity, ".invalid_role"},
	{"", domain.ErrStateInvalid, http.StatusUnprocessableEntity, ".invalid_state"},
	{"", commands.ErrReferrerNotFound, http.StatusUnprocessableEntity, ".referral_doesnt_exist"},
	{"", domain.ErrDataInvalid, http.StatusUnprocessableEntity, ".invalid_data"},
	{"", auth.ErrWeakPassword, http.StatusUnprocessableEntity, ".weak_password"},
	{"", commands.ErrMissingPassword, http.StatusUnprocessableEntity, ".missing_password"},
	{"", commands.ErrPasswordMismatch, http.StatusUnprocessableEntity, ".passwords_doesnt_match"},
	{"", commands.ErrSamePassword, http.StatusUnprocessableEntity, ".no_change_provided"},
	{"", commands.ErrWrongPassword, http.StatusUnprocessableEntity, ".invalid_password"},
	{"", domain.ErrUnchanged, http.StatusUnprocessableEntity, ".no_change_provided"},
	{"", domain.ErrTokenInvalid, http.StatusUnprocessableEntity, ".invalid_token"},
	{"", domain.ErrTokenExpired, http.StatusUnprocessableEntity, ".expired_token"},
	{"", domain.ErrEmailAlreadyVerified, http.StatusConflict, ".already_verified"},

	{"", domain.ErrOTPAlreadyEnabled, http.StatusConflict, ".already_enabled"},
	{"", domain.ErrOTPNotEnabled, http.StatusUnprocessableEntity, ".not_enabled"},
	{"", domain.ErrOTPSecretMissing, http.StatusUnprocessableEntity, ".not_generated"},
	{"", domain.ErrOTPRequired, http.StatusUnprocessableEntity, ".missing_otp"},
	{"", auth.ErrOTPCodeInvalid, http.StatusUnprocessableEntity, ".invalid_otp"},
	{"", domain.ErrOTPReplayed, http.StatusUnprocessableEntity, ".invalid_otp"},

	// Labels and the wallet.
	{"", domain.ErrLabelPrivate, http.StatusForbidden, ".private"},
	{"", domain.ErrLabelNotFound, http.StatusNotFound, ".not_found"},
	{"", ErrLabelNotFound, http.StatusNotFound, ".not_found"},
	{"", domain.ErrLabelExists, http.StatusUnprocessableEntity, ".key_taken"},
	{"", domain.ErrLabelKeyInvalid, http.StatusUnprocessableEntity, ".invalid_key"},
	{"", domain.ErrLabelValueInvalid, http.StatusUnprocessableEntity, ".invalid_value"},
	{"", domain.ErrLabelScopeInvalid, http.StatusUnprocessableEntity, ".invalid_scope"},
	{"", domain.ErrLabelDescriptionInvalid, http.StatusUnprocessableEntity, ".invalid_description"},
	{"", domain.ErrInsufficientFunds, http.StatusUnprocessableEntity, ".insufficient_funds"},
	{"", domain.ErrAmountInvalid, http.StatusUnprocessableEntity, ".invalid_amount"},
	{"", domain.ErrBalanceInvalid, http.StatusUnprocessableEntity, ".invalid_balance"},
	{"", domain.ErrWalletReasonInvalid, http.StatusUnprocessableEntity, ".invalid_reason"},
	{"", domain.ErrWalletReferenceInvalid, http.StatusUnprocessableEntity, ".invalid_reference"},

	{"", domain.ErrUserNotActive, http.StatusUnauthorized, ".not_active"},
	{"", domain.ErrSessionNotFound, http.StatusUnauthorized, "authz.invalid_session"},
	{"", commands.ErrUserNotFound, http.StatusNotFound, "record.not_found"},
	{"", ErrUserNotFound, http.StatusNotFound, "record.not_found"},
	{"", projections.ErrNotFound, http.StatusNotFound, "record.not_found"},
	// Closed for good: to the API the account is gone, as the read models say.
	{"", domain.ErrAccountClosed, http.StatusNotFound, "record.not_found"},
	// The role table (commands.Permits) or the rules of who acts on whom refused it.
	{"", commands.ErrNotPermitted, http.StatusForbidden, "admin.ability.not_permitted"},

	{"", errBodyTooLarge, http.StatusRequestEntityTooLarge, "request.body_too_large"},
	{"", errMalformedBody, http.StatusBadRequest, "request.malformed_body"},
	{"", errInvalidText, http.StatusUnprocessableEntity, "request.invalid_utf8"},
	// Text that reached the store without passing the decoders (a path segment, say).
	{"", eventstore.ErrInvalidText, http.StatusUnprocessableEntity, "request.invalid_utf8"},
	{"", eventstore.ErrClosed, http.StatusServiceUnavailable, "server.unavailable"},
	{"", context.DeadlineExceeded, http.StatusServiceUnavailable, "server.unavailable"},
	{"", context.Canceled, http.StatusServiceUnavailable, "server.unavailable"},
}

// errorStatus maps err, on a route of scope, to a status and a code. A database that cannot be
// reached is 503 server.unavailable; other unknown errors are 500 server.internal_error.
func errorStatus(scope string, err error) (int, string) {
	// A typed error that carries its field: the code names it.
	var pf *domain.ProfileFieldError
	if errors.As(err, &pf) {
		return http.StatusUnprocessableEntity, scope + ".invalid_" + pf.Field
	}
	var df *domain.DocumentFieldError
	if errors.As(err, &df) {
		return http.StatusUnprocessableEntity, scope + ".invalid_" + df.Field
	}
	var polf *domain.PolicyFieldError
	if errors.As(err, &polf) {
		return http.StatusUnprocessableEntity, scope + ".invalid_" + polf.Field
	}
	for _, r := range errorRules {
		if (r.scope == "" || r.scope == scope) && errors.Is(err, r.err) {
			if strings.HasPrefix(r.code, ".") {
				return r.status, scope + r.code
			}
			return r.status, r.code
		}
	}
	if eventstore.Unavailable(err) {
		// The database is away (restarted, failing over): nothing took effect, try again later.
		return http.StatusServiceUnavailable, "server.unavailable"
	}
	return http.StatusInternalServerError, "server.internal_error"
}

// writeCommandError answers a failed command. A throttled sign-in says when to retry; errors the
// client did not cause are logged, and never shown.
func writeCommandError(w http.ResponseWriter, r *http.Request, log *slog.Logger, scope string, err error) {
	status, code := errorStatus(scope, err)
	var throttled *commands.ThrottledError
	if errors.As(err, &throttled) {
		w.Header().Set("Retry-After", strconv.Itoa(int((throttled.RetryAfter+time.Second-1)/time.Second)))
	}
	if status >= 500 {
		log.LogAttrs(r.Context(), slog.LevelError, "request failed",
			slog.String("request_id", RequestID(r.Context())), slog.String("code", code), slog.Any("error", err))
	}
	if errors.Is(err, auth.ErrWeakPassword) {
		// The rule the password broke, in a sentence, for the person who typed it.
		reason := err.Error()
		if i := strings.Index(reason, auth.ErrWeakPassword.Error()+": "); i >= 0 {
			reason = reason[i+len(auth.ErrWeakPassword.Error())+2:]
		}
		WriteJSON(w, status, struct {
			Errors []string `json:"errors"`
			Reason string   `json:"reason"`
		}{[]string{code}, reason})
		return
	}
	WriteError(w, status, code)
}
