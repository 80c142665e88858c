package config

// erasureSettings: what happens to a user's personal data when they delete their own account.
var erasureSettings = []setting{
	boolSetting("IDLOG_ERASE_ON_DELETE", "erase-on-delete", "false", "a user deleting their own account also erases their personal data, for good: the account cannot be restored (`bool`)",
		func(a *Accounts, b bool) { a.EraseOnDelete = b }),
}

func init() { settings = append(settings, erasureSettings...) }
