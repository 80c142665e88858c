package config_test

import (
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/idlog/idlog/internal/config"
)

func TestSignupBonusAndLevels(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		env         map[string]string
		bonus       int64
		levels      string
		wantErrName string
		wantErr     string
	}{
		{env: map[string]string{}, bonus: 0, levels: ""},
		{env: map[string]string{"IDLOG_SIGNUP_BONUS": "250"}, bonus: 250},
		{env: map[string]string{"IDLOG_SIGNUP_BONUS": "0"}, bonus: -1},
		{env: map[string]string{"IDLOG_LEVELS": " email=verified , kyc=approved "}, levels: "email=verified,kyc=approved"},
		{env: map[string]string{"IDLOG_SIGNUP_BONUS": "-5"}, wantErrName: "IDLOG_SIGNUP_BONUS", wantErr: "want a whole number from 0"},
		{env: map[string]string{"IDLOG_SIGNUP_BONUS": "lots"}, wantErrName: "IDLOG_SIGNUP_BONUS", wantErr: "want a whole number"},
		{env: map[string]string{"IDLOG_LEVELS": "email"}, wantErrName: "IDLOG_LEVELS", wantErr: "not key=value"},
		{env: map[string]string{"IDLOG_LEVELS": "email=verified,email=again"}, wantErrName: "IDLOG_LEVELS", wantErr: "two rungs"},
	} {
		c, err := load(t, tc.env)
		if tc.wantErr != "" {
			if !errors.Is(err, config.ErrInvalid) || !strings.Contains(err.Error(), tc.wantErrName) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%v: %v, want an error naming %s: %s", tc.env, err, tc.wantErrName, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%v: %v", tc.env, err)
		}
		if c.Accounts.SignupBonus != tc.bonus || c.Accounts.Levels != tc.levels {
			t.Errorf("%v: bonus %d, levels %q; want %d, %q", tc.env, c.Accounts.SignupBonus, c.Accounts.Levels, tc.bonus, tc.levels)
		}
	}
	if c, err := load(t, map[string]string{"IDLOG_SIGNUP_BONUS": "3"}, "-signup-bonus", "7"); err != nil || c.Accounts.SignupBonus != 7 {
		t.Errorf("the flag over the variable: %d, %v; want 7", c.Accounts.SignupBonus, err)
	}
}

// The start-up log shows the bonus and the ladder in force, not how an unset value is kept.
func TestSignupBonusAndLevelsLogged(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		env  map[string]string
		want []string
	}{
		{map[string]string{}, []string{"signup_bonus=100", `levels="email=verified,phone=verified,document=verified"`}},
		{map[string]string{"IDLOG_SIGNUP_BONUS": "0", "IDLOG_LEVELS": "kyc=approved"}, []string{"signup_bonus=0 ", `levels="kyc=approved"`}},
		{map[string]string{"IDLOG_SIGNUP_BONUS": "250"}, []string{"signup_bonus=250"}},
	} {
		c, err := load(t, tc.env)
		if err != nil {
			t.Fatal(err)
		}
		var buf strings.Builder
		slog.New(slog.NewTextHandler(&buf, nil)).Info("starting", "config", c)
		for _, w := range tc.want {
			if !strings.Contains(buf.String(), w) {
				t.Errorf("%v: the start-up log %s lacks %q", tc.env, buf.String(), w)
			}
		}
	}
}
