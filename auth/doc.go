// Package auth holds idlog's security primitives: argon2id password hashing and a password
// strength estimate, random tokens and their hashes, AES-256-GCM sealing of stored secrets,
// Ed25519-signed JWT access tokens with their JWKS, and TOTP (RFC 6238) codes.
//
// It knows nothing of users or events: the command layer calls it, and hands the domain only what
// auth produced (hashes, ciphertext, time steps), never a plain password, token or secret.
package auth
