//go:build !unix

package main

// privateUmask does nothing where there is no umask; file modes are the system's.
func privateUmask() {}
