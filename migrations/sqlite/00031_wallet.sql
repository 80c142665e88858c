-- The wallet read model (projections.WalletView): each user's two balances, and every movement
-- that made them, one generation per rebuild (see 00010). A balance always equals the sum of its
-- movements: both are written in the same transaction, from the same events. Amounts are whole
-- coins; a movement's amount is positive for a credit and negative for a debit. Times are unix
-- microseconds.

-- +goose Up
CREATE TABLE wallets (
    generation INTEGER NOT NULL,
    uid        TEXT NOT NULL,
    free       INTEGER NOT NULL CHECK (free >= 0),
    standard   INTEGER NOT NULL CHECK (standard >= 0),
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (generation, uid)
);

-- id is the event's global position: the same after a rebuild, and ordering by it is ordering by
-- commit.
CREATE TABLE wallet_movements (
    generation INTEGER NOT NULL,
    id         INTEGER NOT NULL,
    uid        TEXT NOT NULL,
    balance    TEXT NOT NULL CHECK (balance IN ('free', 'standard')),
    amount     INTEGER NOT NULL CHECK (amount <> 0),
    reason     TEXT NOT NULL,
    reference  TEXT NOT NULL DEFAULT '',
    actor_uid  TEXT NOT NULL DEFAULT '', -- who moved the coins, from the envelope
    created_at INTEGER NOT NULL,
    PRIMARY KEY (generation, id)
);
CREATE INDEX wallet_movements_uid ON wallet_movements (generation, uid, id);

-- +goose Down
DROP TABLE wallet_movements;
DROP TABLE wallets;
