package commands

// EmailKey is the unique key a user with the normalised email claims in the event store, for
// writers of user streams outside this package (idlog users import).
func EmailKey(normalised string) string { return emailKey(normalised) }

// UsernameKey is the unique key a user with the normalised username claims.
func UsernameKey(normalised string) string { return usernameKey(normalised) }
