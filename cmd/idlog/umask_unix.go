//go:build unix

package main

import "syscall"

// privateUmask makes every file and directory idlog creates from now on private to its user
// (0600, 0700), including those libraries create for it (SQLite's -wal and -shm, JetStream's
// store), whatever umask it was started with.
func privateUmask() { syscall.Umask(0o077) }
