package config

import "github.com/idlog/idlog/domain"

// sessionSettings bound what one user costs: how many sessions they may hold open at once, and how
// often their rebuilt state is saved as a snapshot beside the log. Their defaults are left to the
// commands (empty here), so that an unset variable keeps the zero value.
var sessionSettings = []setting{
	intSetting("IDLOG_MAX_SESSIONS", "max-sessions", "", "sessions a user may have open at once; a sign-in beyond ends the oldest (`n`; default 100)", 1, domain.MaxSessionLimit,
		func(a *Accounts, n int) { a.MaxSessions = n }),
	intSetting("IDLOG_SNAPSHOT_EVERY", "snapshot-every", "", "events after which a user's state is saved again as a snapshot (`n`; 0: no snapshots; default 100)", 0, 1000000,
		func(a *Accounts, n int) {
			if n == 0 {
				n = -1 // the commands read 0 as "the default" and a negative value as "off"
			}
			a.SnapshotEvery = n
		}),
}

func init() { settings = append(settings, sessionSettings...) }
