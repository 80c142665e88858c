package projections

import (
	"github.com/jmoiron/sqlx"

	"github.com/idlog/idlog/domain"
	"github.com/idlog/idlog/internal/stmtcache"
	"github.com/idlog/idlog/migrations"
)

// view is what every read model holds: the read models' database, its dialect and an event
// registry to decode the log with. Views embed it.
type view struct {
	db    *sqlx.DB
	d     dialect
	reg   *domain.Registry
	stmts *stmtcache.Cache // the statements a request runs, prepared once (users by uid, say)
}

// newView checks a view's wiring for constructor ctor: a nil db or an unknown dialect is a wiring
// mistake and panics.
func newView(ctor string, db *sqlx.DB, d migrations.Dialect) view {
	if db == nil {
		panic("projections: " + ctor + " with a nil db")
	}
	if err := checkDialect(d); err != nil {
		panic(err.Error())
	}
	return view{db: db, d: dialect(d), reg: domain.NewEventRegistry(), stmts: stmtcache.New(db)}
}
