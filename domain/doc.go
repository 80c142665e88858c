// Package domain holds idlog's aggregates, their events and their rules. It is pure: no I/O, no
// clock and no randomness it did not receive, and it imports only the standard library.
package domain
