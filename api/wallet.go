package api

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/gorilla/mux"

	"github.com/idlog/idlog/commands"
	"github.com/idlog/idlog/domain"
	"github.com/idlog/idlog/projections"
)

// Wallet routes: the signed-in user's coins under /api/v2/resource/wallet, and credits by
// administrators and accountants under /api/v2/admin/wallets. Every call that moves coins
// honours Idempotency-Key.

// Scopes of the wallet routes.
const (
	scopeResourceWallet = "resource.wallet"
	scopeAdminWallet    = "admin.wallet"
)

// walletCreditors are the roles that may credit a wallet (deposits from a payment provider arrive
// through them).
var walletCreditors = commands.RolesWith(commands.AbilityCreditWallets)

// Wallets is the wallet read model the wallet routes read; *projections.WalletView is one.
type Wallets interface {
	// Balances is what the user holds: zero for a user who never had a movement.
	Balances(ctx context.Context, uid string) (projections.Balances, error)
	// Movements returns a page of the user's movements, newest first, and how many in all; a page
	// out of range is a *projections.FilterError.
	Movements(ctx context.Context, f projections.MovementFilter) ([]projections.Movement, int, error)
}

type movementJSON struct {
	ID        int64     `json:"id"`
	Balance   string    `json:"balance"`
	Amount    int64     `json:"amount"`
	Reason    string    `json:"reason"`
	Reference string    `json:"reference"`
	CreatedAt time.Time `json:"created_at"`
}

// walletJSON is a wallet: both balances, and the movements when asked for.
type walletJSON struct {
	UID       string          `json:"uid,omitempty"`
	Free      int64           `json:"free"`
	Standard  int64           `json:"standard"`
	Movements *[]movementJSON `json:"movements,omitempty"`
}

func (a *accountRoutes) registerWallet(r, res *mux.Router) {
	get, post := []string{http.MethodGet, http.MethodHead}, http.MethodPost
	h := func(f http.HandlerFunc) http.Handler { return f }
	res.Handle("/wallet", h(a.myWallet)).Methods(get...)
	res.Handle("/wallet/spend", h(a.spend)).Methods(post)
	res.Handle("/wallet/withdrawals", h(a.withdraw)).Methods(post)
	r.Handle("/api/v2/admin/wallets/{uid}/credits",
		a.authn.Middleware(RequireRole(walletCreditors...)(h(a.credit)))).Methods(post)
}

func (a *accountRoutes) myWallet(w http.ResponseWriter, r *http.Request) {
	page, limit, ok := pageParams(w, r, scopeResourceWallet)
	if !ok {
		return
	}
	c, _ := CallerFrom(r.Context())
	b, err := a.Wallets.Balances(r.Context(), c.UID)
	if err != nil {
		a.fail(w, r, scopeResourceWallet, err)
		return
	}
	ms, total, err := a.Wallets.Movements(r.Context(), projections.MovementFilter{UID: c.UID, Page: page, Limit: limit})
	if err != nil {
		a.failView(w, r, scopeResourceWallet, err)
		return
	}
	out := make([]movementJSON, len(ms))
	for i, m := range ms {
		out[i] = movementJSON{ID: m.ID, Balance: m.Balance, Amount: m.Amount, Reason: m.Reason, Reference: m.Reference, CreatedAt: m.CreatedAt.UTC()}
	}
	paginated(w, total, page, limit)
	WriteJSON(w, http.StatusOK, walletJSON{Free: b.Free, Standard: b.Standard, Movements: &out})
}

// coins reads a whole number of coins, answering 422 itself when it is missing or not one.
func coins(w http.ResponseWriter, p params, scope string) (int64, bool) {
	s := p.str("amount")
	if s == "" {
		WriteError(w, http.StatusUnprocessableEntity, scope+".missing_amount")
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		WriteError(w, http.StatusUnprocessableEntity, scope+".invalid_amount")
		return 0, false
	}
	return n, true
}

// walletAnswer waits for the read models, so that a GET right after shows the movement, and
// answers with the balances the command left: exact even when the wait timed out.
func (a *accountRoutes) walletAnswer(w http.ResponseWriter, r *http.Request, status int, res commands.Result, uid string) {
	a.caughtUp(r.Context(), res.Position)
	WriteJSON(w, status, walletJSON{UID: uid, Free: res.Account.Wallet.Free, Standard: res.Account.Wallet.Standard})
}

func (a *accountRoutes) spend(w http.ResponseWriter, r *http.Request) {
	p, ok := a.params(w, r)
	if !ok {
		return
	}
	n, ok := coins(w, p, scopeResourceWallet)
	if !ok {
		return
	}
	c, _ := CallerFrom(r.Context())
	res, err := a.App.Commands.SpendFromWallet.Handle(r.Context(), commands.SpendFromWallet{
		Meta: a.meta(r), UID: uidOf(c), Amount: n, Reference: p.str("reference"),
	})
	if err != nil {
		a.fail(w, r, scopeResourceWallet, err)
		return
	}
	a.walletAnswer(w, r, http.StatusOK, res, "")
}

func (a *accountRoutes) withdraw(w http.ResponseWriter, r *http.Request) {
	p, ok := a.params(w, r)
	if !ok {
		return
	}
	n, ok := coins(w, p, scopeResourceWallet)
	if !ok {
		return
	}
	c, _ := CallerFrom(r.Context())
	res, err := a.App.Commands.WithdrawFromWallet.Handle(r.Context(), commands.WithdrawFromWallet{
		Meta: a.meta(r), UID: uidOf(c), Amount: n, Reference: p.str("reference"),
	})
	if err != nil {
		a.fail(w, r, scopeResourceWallet, err)
		return
	}
	a.walletAnswer(w, r, http.StatusCreated, res, "")
}

func (a *accountRoutes) credit(w http.ResponseWriter, r *http.Request) {
	p, ok := a.params(w, r)
	if !ok || !require(w, p, scopeAdminWallet, "balance", "reason") {
		return
	}
	n, ok := coins(w, p, scopeAdminWallet)
	if !ok {
		return
	}
	uid, err := domain.ParseUserID(mux.Vars(r)["uid"])
	if err != nil {
		WriteError(w, http.StatusNotFound, "record.not_found")
		return
	}
	res, err := a.App.Commands.CreditWallet.Handle(r.Context(), commands.CreditWallet{
		Meta: a.meta(r), UID: uid, Balance: p.str("balance"), Amount: n, Reason: p.str("reason"), Reference: p.str("reference"),
	})
	if err != nil {
		a.fail(w, r, scopeAdminWallet, err)
		return
	}
	a.walletAnswer(w, r, http.StatusCreated, res, string(uid))
}

// meJSON is GET /users/me: the user, with their labels and both balances.
type meJSON struct {
	userJSON
	Labels         []labelJSON `json:"labels"`
	WalletFree     int64       `json:"wallet_free"`
	WalletStandard int64       `json:"wallet_standard"`
	// Profiles and Settings, when the server has the profiles read model: Barong's UserWithProfile.
	Profiles *[]profileJSON  `json:"profiles,omitempty"`
	Settings json.RawMessage `json:"settings,omitempty"`
}

// Profiles reads a user with their labels and balances at once (projections.ProfileView).
type Profiles interface {
	// ByUID returns the user's profile, or an error matching projections.ErrNotFound.
	ByUID(ctx context.Context, uid string) (projections.Profile, error)
}

// versionedProfiles is Profiles whose profiles can carry the version of their user's last event
// (projections.ProfileView made WithStreamVersions): GET /users/me then checks the session with it.
type versionedProfiles interface {
	Profiles
	ReadsStreamVersions() bool
}

// meOfProfile is GET /users/me from a profile.
func meOfProfile(p projections.Profile) meJSON {
	u := p.User
	return meJSON{
		userJSON: userJSONOf(UserView{
			UID: u.UID, Email: u.Email, Username: u.Username, Role: u.Role, State: u.State, Level: u.Level,
			OTP: u.OTP, EmailVerified: u.EmailVerified, Data: u.Data, CreatedAt: u.CreatedAt, UpdatedAt: u.UpdatedAt,
		}),
		Labels: labelsJSON(p.Labels), WalletFree: p.Wallet.Free, WalletStandard: p.Wallet.Standard,
	}
}

// meOf adds the user's labels and balances to their view, when the server has those read models.
func (a *accountRoutes) meOf(ctx context.Context, v UserView) (meJSON, error) {
	m := meJSON{userJSON: userJSONOf(v), Labels: []labelJSON{}}
	if a.Labels != nil {
		ls, err := a.Labels.ForUser(ctx, v.UID)
		if err != nil {
			return meJSON{}, err
		}
		m.Labels = labelsJSON(ls)
	}
	if a.Wallets != nil {
		b, err := a.Wallets.Balances(ctx, v.UID)
		if err != nil {
			return meJSON{}, err
		}
		m.WalletFree, m.WalletStandard = b.Free, b.Standard
	}
	return m, nil
}
