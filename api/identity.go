package api

import (
	"math"
	"net/http"
	"time"

	"github.com/gorilla/mux"

	"github.com/idlog/idlog/auth"
	"github.com/idlog/idlog/commands"
)

// Public routes: /api/v2/identity, /api/v2/public and the JWKS.

func (a *accountRoutes) jwks(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Cache-Control", "public, max-age=300")
	WriteJSON(w, http.StatusOK, a.Tokens.JWKS())
}

func (a *accountRoutes) ping(w http.ResponseWriter, _ *http.Request) {
	WriteJSON(w, http.StatusOK, map[string]string{"ping": "pong"})
}

func (a *accountRoutes) time(w http.ResponseWriter, _ *http.Request) {
	WriteJSON(w, http.StatusOK, map[string]int64{"time": time.Now().Unix()})
}

func (a *accountRoutes) versionInfo(w http.ResponseWriter, _ *http.Request) {
	WriteJSON(w, http.StatusOK, map[string]string{"version": a.version})
}

// configs tells a frontend what it needs before sign-up and sign-in.
func (a *accountRoutes) configs(w http.ResponseWriter, _ *http.Request) {
	WriteJSON(w, http.StatusOK, map[string]any{
		"session_expire_time":  int(a.Tokens.TTL() / time.Second),
		"password_min_length":  auth.MinPasswordLength,
		"password_min_entropy": auth.MinPasswordEntropy,
		"captcha_type":         "none",
		"otp_issuer":           auth.TOTPIssuer,
	})
}

// validatePassword estimates a password's strength without storing anything.
func (a *accountRoutes) validatePassword(w http.ResponseWriter, r *http.Request) {
	p, ok := a.params(w, r)
	if !ok || !require(w, p, scopeIdentityPassword, "password") {
		return
	}
	entropy, strong, reason := auth.PasswordStrength(p.str("password"))
	body := map[string]any{"entropy": math.Round(entropy*10) / 10, "strong": strong}
	if !strong {
		body["reason"] = reason
	}
	WriteJSON(w, http.StatusOK, body)
}

func (a *accountRoutes) registerUser(w http.ResponseWriter, r *http.Request) {
	p, ok := a.params(w, r)
	if !ok || !require(w, p, scopeIdentityUser, "email", "password") {
		return
	}
	res, err := a.App.Commands.RegisterUser.Handle(r.Context(), commands.RegisterUser{
		Meta: a.meta(r), Email: p.str("email"), Password: p.str("password"), Username: p.str("username"),
		RefID: p.str("refid"), Data: p.json("data"),
	})
	if err != nil {
		a.fail(w, r, scopeIdentityUser, err)
		return
	}
	a.caughtUp(r.Context(), res.Position)
	WriteJSON(w, http.StatusCreated, userJSONOf(a.view(r.Context(), res.Account)))
}

// sessionJSON answers a sign-in: the user, a bearer access token and the refresh token that
// renews it (POST /api/v2/identity/sessions/refresh) until session_expires_at, which each refresh
// moves on up to the session's lifetime.
type sessionJSON struct {
	User             userJSON  `json:"user"`
	AccessToken      string    `json:"access_token"`
	TokenType        string    `json:"token_type"`
	ExpiresAt        time.Time `json:"expires_at"`
	ExpiresIn        int64     `json:"expires_in"` // seconds
	RefreshToken     string    `json:"refresh_token,omitempty"`
	SessionExpiresAt time.Time `json:"session_expires_at"`
}

func (a *accountRoutes) signIn(w http.ResponseWriter, r *http.Request) {
	if a.loginRestricted(w, r) { // gatekeeper.go
		return
	}
	p, ok := a.params(w, r)
	if !ok {
		return
	}
	login := p.str("login")
	if login == "" {
		login = p.str("email") // Barong's clients send the email under that name
	}
	if login == "" {
		login = p.str("username")
	}
	var missing []string
	if login == "" {
		missing = append(missing, "identity.session.missing_login")
	}
	if p.str("password") == "" {
		missing = append(missing, "identity.session.missing_password")
	}
	if missing != nil {
		WriteError(w, http.StatusUnprocessableEntity, missing...)
		return
	}
	cookie := a.wantsCookies(p)
	res, err := a.App.Commands.SignIn.Handle(r.Context(), commands.SignIn{
		Meta: a.meta(r), Login: login, Password: p.str("password"), OTPCode: p.str("otp_code"), Cookie: cookie,
	})
	if err != nil {
		a.fail(w, r, scopeIdentitySession, err)
		return
	}
	a.caughtUp(r.Context(), res.Position)
	noStore(w)
	user := userJSONOf(a.view(r.Context(), res.Account))
	if cookie && res.RefreshToken != "" {
		a.setSessionCookies(w, r, res.Token, res.ExpiresAt, res.RefreshToken, res.SessionExpiresAt)
		WriteJSON(w, http.StatusOK, cookieSessionJSON{User: &user, CSRFToken: res.CSRFToken, ExpiresAt: res.ExpiresAt, SessionExpiresAt: res.SessionExpiresAt})
		return
	}
	WriteJSON(w, http.StatusOK, sessionJSON{
		User: user, AccessToken: res.Token, TokenType: "Bearer",
		ExpiresAt: res.ExpiresAt, ExpiresIn: int64(time.Until(res.ExpiresAt).Round(time.Second) / time.Second),
		RefreshToken: res.RefreshToken, SessionExpiresAt: res.SessionExpiresAt,
	})
}

func (a *accountRoutes) signOut(w http.ResponseWriter, r *http.Request) {
	c, _ := CallerFrom(r.Context())
	res, err := a.App.Commands.SignOut.Handle(r.Context(), commands.SignOut{Meta: a.meta(r), UID: uidOf(c), SessionID: c.SessionID})
	if err != nil {
		a.fail(w, r, scopeIdentitySession, err)
		return
	}
	if c.Cookie {
		a.clearSessionCookies(w, r)
	}
	a.caughtUp(r.Context(), res.Position)
	w.WriteHeader(http.StatusNoContent)
}

// requestEmailCode answers the same whether the address is registered or not.
func (a *accountRoutes) requestEmailCode(w http.ResponseWriter, r *http.Request) {
	p, ok := a.params(w, r)
	if !ok || !require(w, p, scopeIdentityUser, "email") {
		return
	}
	if _, err := a.App.Commands.RequestEmailVerification.Handle(r.Context(), commands.RequestEmailVerification{Meta: a.meta(r), Email: p.str("email")}); err != nil {
		a.fail(w, r, scopeIdentityUser, err)
		return
	}
	WriteJSON(w, http.StatusCreated, struct{}{})
}

func (a *accountRoutes) confirmEmail(w http.ResponseWriter, r *http.Request) {
	p, ok := a.params(w, r)
	if !ok || !require(w, p, scopeIdentityUser, "token") {
		return
	}
	res, err := a.App.Commands.VerifyEmail.Handle(r.Context(), commands.VerifyEmail{Meta: a.meta(r), Token: p.str("token")})
	if err != nil {
		a.fail(w, r, scopeIdentityUser, err)
		return
	}
	a.caughtUp(r.Context(), res.Position)
	WriteJSON(w, http.StatusCreated, userJSONOf(a.view(r.Context(), res.Account)))
}

// requestResetCode answers the same whether the address is registered or not.
func (a *accountRoutes) requestResetCode(w http.ResponseWriter, r *http.Request) {
	p, ok := a.params(w, r)
	if !ok || !require(w, p, scopeIdentityPassword, "email") {
		return
	}
	if _, err := a.App.Commands.RequestPasswordReset.Handle(r.Context(), commands.RequestPasswordReset{Meta: a.meta(r), Email: p.str("email")}); err != nil {
		a.fail(w, r, scopeIdentityPassword, err)
		return
	}
	WriteJSON(w, http.StatusCreated, struct{}{})
}

func (a *accountRoutes) resetPassword(w http.ResponseWriter, r *http.Request) {
	p, ok := a.params(w, r)
	if !ok || !require(w, p, scopeIdentityPassword, "reset_password_token", "password", "confirm_password") {
		return
	}
	res, err := a.App.Commands.ResetPassword.Handle(r.Context(), commands.ResetPassword{
		Meta: a.meta(r), Token: p.str("reset_password_token"), Password: p.str("password"), ConfirmPassword: p.str("confirm_password"),
	})
	if err != nil {
		a.fail(w, r, scopeIdentityPassword, err)
		return
	}
	a.caughtUp(r.Context(), res.Position)
	WriteJSON(w, http.StatusCreated, struct{}{})
}

// publicUserJSON is what anyone may see of a user.
type publicUserJSON struct {
	UID      string  `json:"uid"`
	Username *string `json:"username"`
}

func (a *accountRoutes) publicUser(w http.ResponseWriter, r *http.Request) {
	v, err := a.Users.ByUID(r.Context(), mux.Vars(r)["uid"])
	if err == nil && v.State != "active" {
		err = ErrUserNotFound // closed accounts are not shown
	}
	if err != nil {
		a.fail(w, r, "public.user", err)
		return
	}
	out := publicUserJSON{UID: v.UID}
	if v.Username != "" {
		out.Username = &v.Username
	}
	WriteJSON(w, http.StatusOK, out)
}
