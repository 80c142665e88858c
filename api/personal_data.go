package api

import (
	"net/http"

	"github.com/gorilla/mux"

	"github.com/idlog/idlog/commands"
	"github.com/idlog/idlog/domain"
)

// registerPersonalData adds DELETE /admin/users/{uid}/personal-data: erasing a user's personal
// data (commands.ErasePersonalData), for administrators and compliance.
func (a *accountRoutes) registerPersonalData(r *mux.Router, user string, route func(http.HandlerFunc, ...commands.Ability) http.Handler) {
	r.Handle(user+"/personal-data", route(a.adminErasePersonalData, commands.AbilityErasePersonalData)).Methods(http.MethodDelete)
}

func (a *accountRoutes) adminErasePersonalData(w http.ResponseWriter, r *http.Request) {
	res, err := a.App.Commands.ErasePersonalData.Handle(r.Context(), commands.ErasePersonalData{Meta: a.meta(r), UID: domain.UserID(mux.Vars(r)["uid"])})
	if err != nil {
		a.fail(w, r, scopeAdminUser, err)
		return
	}
	a.caughtUp(r.Context(), res.Position)
	w.WriteHeader(http.StatusNoContent)
}
