package projections

import (
	"context"
	"fmt"
	"time"
)

// UserMetrics is Barong's main statistic over a period, counted in the activity log: sign-ups
// (by the users themselves or created by an administrator), successful and failed sign-ins, and
// active users, the distinct users who signed in. Closed accounts still count: the log keeps them.
type UserMetrics struct {
	From, To      time.Time
	SignUps       int
	SignIns       int
	FailedSignIns int
	ActiveUsers   int
}

// UserMetrics counts the activity of [from, to). Both bounds are required, from before to; a bad
// period matches ErrInvalidFilter (fields from and to).
func (v *ActivityView) UserMetrics(ctx context.Context, from, to time.Time) (UserMetrics, error) {
	switch {
	case from.IsZero():
		return UserMetrics{}, &FilterError{Field: "from", Reason: "is required"}
	case to.IsZero():
		return UserMetrics{}, &FilterError{Field: "to", Reason: "is required"}
	case !from.Before(to):
		return UserMetrics{}, &FilterError{Field: "from", Reason: fmt.Sprintf("(%s) is not before to (%s)", from.UTC().Format(time.RFC3339), to.UTC().Format(time.RFC3339))}
	}
	var row struct {
		SignUps       int `db:"sign_ups"`
		SignIns       int `db:"sign_ins"`
		FailedSignIns int `db:"failed_sign_ins"`
		ActiveUsers   int `db:"active_users"`
	}
	// A sign-in is the user's own row (topic session); a sign-up is the user's own row (topic
	// account) or the administrator's who created them (topic admin), action signup in both.
	q := v.d.rebind(`SELECT
		COALESCE(SUM(CASE WHEN action = 'signup' AND topic IN ('account', 'admin') THEN 1 ELSE 0 END), 0) AS sign_ups,
		COALESCE(SUM(CASE WHEN topic = 'session' AND action = 'login' AND result = 'succeed' THEN 1 ELSE 0 END), 0) AS sign_ins,
		COALESCE(SUM(CASE WHEN topic = 'session' AND action = 'login' AND result = 'failed' THEN 1 ELSE 0 END), 0) AS failed_sign_ins,
		COUNT(DISTINCT CASE WHEN topic = 'session' AND action = 'login' AND result = 'succeed' THEN uid END) AS active_users
		FROM activity WHERE generation = (SELECT live FROM projection_generations WHERE name = 'activity')
		AND created_at >= ? AND created_at < ?`)
	if err := v.db.GetContext(ctx, &row, q, v.d.time(from), v.d.time(to)); err != nil {
		return UserMetrics{}, fmt.Errorf("projections: user metrics: %w", err)
	}
	return UserMetrics{
		From: from.UTC(), To: to.UTC(), SignUps: row.SignUps, SignIns: row.SignIns,
		FailedSignIns: row.FailedSignIns, ActiveUsers: row.ActiveUsers,
	}, nil
}
