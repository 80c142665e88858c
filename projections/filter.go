package projections

import (
	"errors"
	"fmt"
	"time"
)

// ErrNotFound: the view holds no such row.
var ErrNotFound = errors.New("projections: not found")

// ErrInvalidFilter matches every *FilterError: a query's filter or pagination is out of range.
// The API answers it with 422.
var ErrInvalidFilter = errors.New("projections: invalid filter")

// FilterError names the filter field that is wrong and why.
type FilterError struct {
	// Field is the filter's field as the API names it: page, limit, from, topic, role, state,
	// level, uid, target_uid, email, action.
	Field  string
	Reason string
}

func (e *FilterError) Error() string {
	return fmt.Sprintf("projections: invalid filter: %s %s", e.Field, e.Reason)
}

// Is makes errors.Is(err, ErrInvalidFilter) true.
func (e *FilterError) Is(target error) bool { return target == ErrInvalidFilter }

// Pagination bounds, as in Barong.
const (
	DefaultLimit = 100
	MaxLimit     = 100
	// MaxPage keeps an offset far from overflow and from scanning the whole table for nothing.
	MaxPage = 100000
)

// page turns Page and Limit into LIMIT and OFFSET. Zero means the default (page 1, limit 100).
func page(p, limit int) (lim, offset int, err error) {
	switch {
	case limit < 0 || limit > MaxLimit:
		return 0, 0, &FilterError{Field: "limit", Reason: fmt.Sprintf("(%d) must be between 1 and %d", limit, MaxLimit)}
	case p < 0 || p > MaxPage:
		return 0, 0, &FilterError{Field: "page", Reason: fmt.Sprintf("(%d) must be between 1 and %d", p, MaxPage)}
	}
	if limit == 0 {
		limit = DefaultLimit
	}
	if p == 0 {
		p = 1
	}
	return limit, (p - 1) * limit, nil
}

// timeRange checks that from is not after to; either may be zero (no bound).
func timeRange(from, to time.Time) error {
	if !from.IsZero() && !to.IsZero() && from.After(to) {
		return &FilterError{Field: "from", Reason: fmt.Sprintf("(%s) is after to (%s)", from.UTC().Format(time.RFC3339), to.UTC().Format(time.RFC3339))}
	}
	return nil
}

// where collects the conditions and arguments of a filtered query.
type where struct {
	sql  string
	args []any
}

func (w *where) add(cond string, args ...any) {
	w.sql += " AND " + cond
	w.args = append(w.args, args...)
}
