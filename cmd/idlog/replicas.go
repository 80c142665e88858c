package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/idlog/idlog/eventbus"
	"github.com/idlog/idlog/eventstore"
	"github.com/idlog/idlog/eventstore/postgres"
	"github.com/idlog/idlog/follower"
	"github.com/idlog/idlog/internal/config"
	"github.com/idlog/idlog/lease"
	"github.com/idlog/idlog/migrations"
	"github.com/idlog/idlog/replicacheck"
)

// sharedKey is a key every replica of a database must hold: its fingerprint, and the
// fingerprints of keys it may replace (a rotation).
type sharedKey struct {
	name, what, setting, fingerprint string
	rotatedFrom                      []string
}

func signingFingerprint(k ed25519.PublicKey) string {
	return replicacheck.Fingerprint("signing key", k)
}

// agreeOnKeys refuses keys other than those the replicas of this database use: a replica that
// made its own keys would refuse everyone else's tokens and could not open their sealed secrets.
// The first replica records the keys' fingerprints. A signing key rotation is the one change
// allowed: when the recorded signing key is among the previous keys this replica accepts
// (IDLOG_SIGNING_KEY_PREVIOUS_FILES), the new key is recorded in its place, and replicas still
// signing with the old one are refused at their next start.
func agreeOnKeys(db *sqlx.DB, log *slog.Logger, signing ed25519.PrivateKey, previous []ed25519.PublicKey, secret []byte) error {
	sk := sharedKey{"signing_key", "token signing key", "IDLOG_SIGNING_KEY_FILE (-signing-key-file)", signingFingerprint(signing.Public().(ed25519.PublicKey)), nil}
	for _, k := range previous {
		sk.rotatedFrom = append(sk.rotatedFrom, signingFingerprint(k))
	}
	return agree(db, log, sk,
		sharedKey{"secret_key", "secret sealing key", "IDLOG_SECRET_KEY_FILE (-secret-key-file)", replicacheck.Fingerprint("secret key", secret), nil})
}

// agreeOnEventsKey refuses an events signing key other than the one the replicas use: after a
// failover another replica's relay publishes, and consumers verify with the keys any replica
// serves. A change of the key (the previous ones stay in the events' JWKS) is recorded.
func agreeOnEventsKey(db *sqlx.DB, log *slog.Logger, signer *eventbus.EventSigner) error {
	k := sharedKey{name: "events_signing_key", what: "events signing key", setting: "IDLOG_EVENTS_SIGNING_KEY_FILE (-events-signing-key-file)",
		fingerprint: signingFingerprint(signer.Keys()[signer.KeyID()])}
	for _, pub := range signer.Keys() {
		k.rotatedFrom = append(k.rotatedFrom, signingFingerprint(pub))
	}
	return agree(db, log, k)
}

func agree(db *sqlx.DB, log *slog.Logger, keys ...sharedKey) error {
	d := migrations.SQLite
	if strings.HasPrefix(db.DriverName(), "postgres") {
		d = migrations.Postgres
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, c := range keys {
		err := replicacheck.Agree(ctx, db.DB, d, c.name, c.fingerprint)
		var me *replicacheck.MismatchError
		if errors.As(err, &me) && slices.Contains(c.rotatedFrom, me.Recorded) {
			replaced, rerr := replicacheck.Replace(ctx, db.DB, d, c.name, me.Recorded, c.fingerprint)
			if rerr != nil {
				return rerr
			}
			if replaced {
				log.Info("key rotation recorded for every replica", "key", c.name, "from", me.Recorded, "to", c.fingerprint)
			}
			err = replicacheck.Agree(ctx, db.DB, d, c.name, c.fingerprint)
		}
		if errors.As(err, &me) {
			return fmt.Errorf("the %s (fingerprint %s) differs from the one this database's replicas use (fingerprint %s): give every replica the same key: set %s to a copy of their key file: %w",
				c.what, me.Mine, me.Recorded, c.setting, err)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// refuseSharedEmbeddedNATS refuses an embedded NATS server on a PostgreSQL database that other
// live replicas use: each replica would publish to a stream of its own, and only the replica that
// owns the relay would fill its stream.
func refuseSharedEmbeddedNATS(ctx context.Context, cfg config.Config, store eventstore.Store, leases follower.Lease) error {
	pg, ok := store.(*postgres.Store)
	l, lok := leases.(*lease.Leases)
	if cfg.NATSURL != "" || !ok || !lok {
		return nil
	}
	// Leases of this very replica before a crash look alive for up to a TTL: wait them out.
	deadline := time.Now().Add(lease.DefaultTTL + time.Second)
	var others []string
	for {
		var err error
		if others, err = replicacheck.OtherLiveReplicas(ctx, pg.DB().DB, l.Owner()); err != nil {
			return err
		}
		if len(others) == 0 || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
	if len(others) > 0 {
		return fmt.Errorf("other replicas run on this database (%s), and this one would start an embedded NATS server that only it publishes to: set IDLOG_NATS_URL (-nats-url) to the NATS server or cluster every replica uses",
			strings.Join(others, ", "))
	}
	return nil
}

// watchHorizon runs, on PostgreSQL, the watch of the transaction that holds the followers back,
// until ctx ends: idlog_eventstore_read_horizon_held_seconds and a warning naming it.
func watchHorizon(ctx context.Context, store eventstore.Store, log *slog.Logger, metrics prometheus.Registerer) error {
	pg, ok := store.(*postgres.Store)
	if !ok {
		return nil
	}
	held := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "idlog_eventstore_read_horizon_held_seconds",
		Help: "Age of the oldest open PostgreSQL transaction holding a transaction id: no follower reads past it until it ends.",
	})
	if err := metrics.Register(held); err != nil {
		return err
	}
	go postgres.HorizonWatch{Store: pg, Logger: log, Held: held}.Run(ctx)
	return nil
}
