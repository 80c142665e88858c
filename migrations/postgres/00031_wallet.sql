-- The wallet read model (projections.WalletView): each user's two balances, and every movement
-- that made them, one generation per rebuild (see 00010). A balance always equals the sum of its
-- movements: both are written in the same transaction, from the same events. Amounts are whole
-- coins; a movement's amount is positive for a credit and negative for a debit.

-- +goose Up
CREATE TABLE wallets (
    generation bigint NOT NULL,
    uid        text COLLATE "C" NOT NULL,
    free       bigint NOT NULL CHECK (free >= 0),
    standard   bigint NOT NULL CHECK (standard >= 0),
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (generation, uid)
);

-- id is the event's global position: the same after a rebuild, and ordering by it is ordering by
-- commit.
CREATE TABLE wallet_movements (
    generation bigint NOT NULL,
    id         bigint NOT NULL,
    uid        text COLLATE "C" NOT NULL,
    balance    text NOT NULL CHECK (balance IN ('free', 'standard')),
    amount     bigint NOT NULL CHECK (amount <> 0),
    reason     text NOT NULL,
    reference  text NOT NULL DEFAULT '',
    actor_uid  text NOT NULL DEFAULT '', -- who moved the coins, from the envelope
    created_at timestamptz NOT NULL,
    PRIMARY KEY (generation, id)
);
CREATE INDEX wallet_movements_uid ON wallet_movements (generation, uid, id);

-- +goose Down
DROP TABLE wallet_movements;
DROP TABLE wallets;
