package commands

import (
	"context"

	"github.com/idlog/idlog/domain"
)

// LoadUser lets the black-box tests see the user a command would start from.
func LoadUser(ctx context.Context, s *UserStreams, uid domain.UserID) (*domain.User, error) {
	return s.load(ctx, uid)
}
