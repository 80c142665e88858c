package main

import (
	"testing"

	cmds "github.com/idlog/idlog/commands"
	"github.com/idlog/idlog/internal/config"
)

// config cannot import commands, so it repeats the default bonus for the start-up log.
func TestConfigKnowsTheDefaultSignupBonus(t *testing.T) {
	t.Parallel()
	if config.DefaultSignupBonus != cmds.DefaultSignupBonus {
		t.Errorf("config.DefaultSignupBonus %d, commands.DefaultSignupBonus %d", config.DefaultSignupBonus, cmds.DefaultSignupBonus)
	}
}
