package api

import (
	"context"
	"net/http"

	"github.com/idlog/idlog/apikeys"
	"github.com/idlog/idlog/commands"
	"github.com/idlog/idlog/domain"
	"github.com/idlog/idlog/projections"
)

// Routes of the signed-in user: /api/v2/resource. The bearer middleware ran: the caller is set.

// uidOf is the caller's user id, checked by the session check already.
func uidOf(c Caller) domain.UserID { return domain.UserID(c.UID) }

func (a *accountRoutes) me(w http.ResponseWriter, r *http.Request) {
	c, _ := CallerFrom(r.Context())
	if a.Profiles != nil {
		p, err := a.Profiles.ByUID(r.Context(), c.UID)
		if err != nil {
			a.fail(w, r, scopeResourceUser, err)
			return
		}
		WriteJSON(w, http.StatusOK, a.meWithProfile(p))
		return
	}
	v, err := a.Users.ByUID(r.Context(), c.UID)
	if err != nil {
		a.fail(w, r, scopeResourceUser, err)
		return
	}
	me, err := a.meOf(r.Context(), v)
	if err == nil {
		err = a.addProfile(r.Context(), &me)
	}
	if err != nil {
		a.fail(w, r, scopeResourceUser, err)
		return
	}
	WriteJSON(w, http.StatusOK, me)
}

// meInOneRead is GET /users/me when the profile query also reads the version of the user's last
// event (projections.ProfileView.WithStreamVersions): the session is checked at that version
// (Authenticator.sessionAt), which this process usually holds already, so the answer takes one
// statement. It checks the token and the session as the bearer middleware does, and answers its
// refusals the same way; the profile read before the session is known open is only shown once it
// is. A user the read models do not show yet has their session checked on its own.
func (a *accountRoutes) meInOneRead(w http.ResponseWriter, r *http.Request) {
	if c, ok := CallerFrom(r.Context()); ok { // checked already, by the idempotency decorator
		if a.authn.inScope(w, r, c) {
			a.me(w, r)
		}
		return
	}
	if a.authn.apiKeys != nil && r.Header.Get(apikeys.HeaderKID) != "" { // signed with an API key
		a.authn.Middleware(http.HandlerFunc(a.me)).ServeHTTP(w, r)
		return
	}
	claims, cookie, status, code, err := a.authn.verify(r)
	if status != 0 {
		a.authn.refuse(w, r, status, code, err)
		return
	}
	p, perr := a.Profiles.ByUID(r.Context(), claims.UserID)
	if perr == nil {
		_, status, code, err = a.authn.sessionAt(r, claims, cookie, p.StreamVersion)
	} else {
		_, status, code, err = a.authn.session(r, claims, cookie)
	}
	if status != 0 {
		a.authn.refuse(w, r, status, code, err)
		return
	}
	if perr != nil {
		a.fail(w, r, scopeResourceUser, perr)
		return
	}
	WriteJSON(w, http.StatusOK, a.meWithProfile(p))
}

// answer waits for the read models and answers with the caller as they show them.
func (a *accountRoutes) answer(w http.ResponseWriter, r *http.Request, res commands.Result) {
	a.caughtUp(r.Context(), res.Position)
	WriteJSON(w, http.StatusOK, userJSONOf(a.view(r.Context(), res.Account)))
}

func (a *accountRoutes) updateData(w http.ResponseWriter, r *http.Request) {
	p, ok := a.params(w, r)
	if !ok {
		return
	}
	if !p.present("data") {
		WriteError(w, http.StatusUnprocessableEntity, scopeResourceUser+".missing_data")
		return
	}
	c, _ := CallerFrom(r.Context())
	res, err := a.App.Commands.UpdateUserData.Handle(r.Context(), commands.UpdateUserData{Meta: a.meta(r), UID: uidOf(c), Data: p.json("data")})
	if err != nil {
		a.fail(w, r, scopeResourceUser, err)
		return
	}
	a.answer(w, r, res)
}

func (a *accountRoutes) changePassword(w http.ResponseWriter, r *http.Request) {
	p, ok := a.params(w, r)
	if !ok || !require(w, p, scopeResourceUser, "old_password", "new_password", "confirm_password") {
		return
	}
	c, _ := CallerFrom(r.Context())
	res, err := a.App.Commands.ChangePassword.Handle(r.Context(), commands.ChangePassword{
		Meta: a.meta(r), UID: uidOf(c), SessionID: c.SessionID,
		OldPassword: p.str("old_password"), NewPassword: p.str("new_password"), ConfirmPassword: p.str("confirm_password"),
	})
	if err != nil {
		a.fail(w, r, scopeResourcePassword, err)
		return
	}
	a.answer(w, r, res)
}

func (a *accountRoutes) changeEmail(w http.ResponseWriter, r *http.Request) {
	p, ok := a.params(w, r)
	if !ok || !require(w, p, scopeResourceUser, "email", "password") {
		return
	}
	c, _ := CallerFrom(r.Context())
	res, err := a.App.Commands.ChangeEmail.Handle(r.Context(), commands.ChangeEmail{Meta: a.meta(r), UID: uidOf(c), Email: p.str("email"), Password: p.str("password")})
	if err != nil {
		a.fail(w, r, scopeResourceUser, err)
		return
	}
	a.answer(w, r, res)
}

func (a *accountRoutes) changeUsername(w http.ResponseWriter, r *http.Request) {
	p, ok := a.params(w, r)
	if !ok || !require(w, p, scopeResourceUser, "username", "password") {
		return
	}
	c, _ := CallerFrom(r.Context())
	res, err := a.App.Commands.ChangeUsername.Handle(r.Context(), commands.ChangeUsername{Meta: a.meta(r), UID: uidOf(c), Username: p.str("username"), Password: p.str("password")})
	if err != nil {
		a.fail(w, r, scopeResourceUser, err)
		return
	}
	a.answer(w, r, res)
}

func (a *accountRoutes) deleteAccount(w http.ResponseWriter, r *http.Request) {
	p, ok := a.params(w, r)
	if !ok || !require(w, p, scopeResourceUser, "password") {
		return
	}
	c, _ := CallerFrom(r.Context())
	res, err := a.App.Commands.DeleteAccount.Handle(r.Context(), commands.DeleteAccount{Meta: a.meta(r), UID: uidOf(c), Password: p.str("password"), OTPCode: p.str("otp_code")})
	if err != nil {
		a.fail(w, r, scopeResourceUser, err)
		return
	}
	a.caughtUp(r.Context(), res.Position)
	a.closed()
	w.WriteHeader(http.StatusNoContent)
}

// otpSecretJSON carries a new TOTP secret to the authenticator app, once.
type otpSecretJSON struct {
	Barcode string `json:"barcode"` // PNG QR code, base64
	URL     string `json:"url"`     // otpauth://totp/...
}

func (a *accountRoutes) generateOTP(w http.ResponseWriter, r *http.Request) {
	c, _ := CallerFrom(r.Context())
	meta := a.meta(r)
	meta.IdempotencyKey = "" // a replay could not show the secret again: a retry makes a new one
	res, err := a.App.Commands.GenerateOTPSecret.Handle(r.Context(), commands.GenerateOTPSecret{Meta: meta, UID: uidOf(c)})
	if err != nil {
		a.fail(w, r, scopeResourceOTP, err)
		return
	}
	a.caughtUp(r.Context(), res.Position)
	noStore(w)
	WriteJSON(w, http.StatusCreated, otpSecretJSON{Barcode: res.QRCode, URL: res.URL})
}

func (a *accountRoutes) enableOTP(w http.ResponseWriter, r *http.Request) {
	p, ok := a.params(w, r)
	if !ok || !require(w, p, scopeResourceOTP, "code") {
		return
	}
	c, _ := CallerFrom(r.Context())
	res, err := a.App.Commands.EnableOTP.Handle(r.Context(), commands.EnableOTP{Meta: a.meta(r), UID: uidOf(c), Code: p.str("code")})
	if err != nil {
		a.fail(w, r, scopeResourceOTP, err)
		return
	}
	a.answer(w, r, res)
}

func (a *accountRoutes) verifyOTP(w http.ResponseWriter, r *http.Request) {
	p, ok := a.params(w, r)
	if !ok || !require(w, p, scopeResourceOTP, "code") {
		return
	}
	c, _ := CallerFrom(r.Context())
	res, err := a.App.Commands.VerifyOTP.Handle(r.Context(), commands.VerifyOTP{Meta: a.meta(r), UID: uidOf(c), Code: p.str("code")})
	if err != nil {
		a.fail(w, r, scopeResourceOTP, err)
		return
	}
	a.caughtUp(r.Context(), res.Position)
	w.WriteHeader(http.StatusNoContent)
}

func (a *accountRoutes) disableOTP(w http.ResponseWriter, r *http.Request) {
	p, ok := a.params(w, r)
	if !ok || !require(w, p, scopeResourceOTP, "code") {
		return
	}
	c, _ := CallerFrom(r.Context())
	res, err := a.App.Commands.DisableOTP.Handle(r.Context(), commands.DisableOTP{Meta: a.meta(r), UID: uidOf(c), Code: p.str("code")})
	if err != nil {
		a.fail(w, r, scopeResourceOTP, err)
		return
	}
	a.answer(w, r, res)
}

// meWithProfile is GET /users/me from the one profile query, which reads the user's profile and
// settings too: shown when the server has the profiles read model.
func (a *accountRoutes) meWithProfile(p projections.Profile) meJSON {
	me := meOfProfile(p)
	if a.UserProfiles != nil {
		profiles := []profileJSON{}
		if p.UserProfile != nil {
			profiles = append(profiles, profileJSONOf(*p.UserProfile))
		}
		me.Profiles, me.Settings = &profiles, p.Settings
	}
	return me
}

// addProfile adds the user's profile and settings to GET /users/me, when the server has them.
func (a *accountRoutes) addProfile(ctx context.Context, me *meJSON) error {
	if a.UserProfiles == nil {
		return nil
	}
	profiles, err := a.profilesOf(ctx, me.UID)
	if err != nil {
		return err
	}
	me.Profiles = &profiles
	me.Settings, err = a.UserProfiles.Settings(ctx, me.UID)
	return err
}
