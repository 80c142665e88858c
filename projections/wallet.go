package projections

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/idlog/idlog/domain"
	"github.com/idlog/idlog/eventstore"
	"github.com/idlog/idlog/migrations"
)

// Balances is what a user holds, in whole coins.
type Balances struct {
	Free, Standard int64
	UpdatedAt      time.Time // zero when the user never had a movement
}

// Movement is one credit or debit of a wallet. Amount is positive for a credit and negative for a
// debit. ID is the event's global position: the same after a rebuild, and ordered by commit.
type Movement struct {
	ID                              int64
	UID, Balance, Reason, Reference string
	Amount                          int64
	ActorUID                        string // who moved the coins; "system" for a sign-up bonus
	CreatedAt                       time.Time
}

// MovementFilter narrows WalletView.Movements to one user; Page and Limit paginate as in
// UserFilter.
type MovementFilter struct {
	UID         string
	Page, Limit int
}

// WalletView is the wallet read model: its projector (a Projector for the Runtime) and its
// queries. Balances and movements are written in one transaction from the same events, so a
// balance always equals the sum of its movements. Queries read the live generation. It is safe
// for concurrent use.
type WalletView struct{ view }

// NewWalletView returns the wallet view over db, which holds the read models (see Options.DB). A
// nil db or an unknown dialect is a wiring mistake and panics.
func NewWalletView(db *sqlx.DB, d migrations.Dialect) *WalletView {
	return &WalletView{newView("NewWalletView", db, d)}
}

// WalletProjector is the wallet view's name in checkpoints, status and the command line.
const WalletProjector = "wallet"

const walletsLive = `(SELECT live FROM projection_generations WHERE name = 'wallet')`

const movementColumns = `id, uid, balance, amount, reason, reference, actor_uid, created_at`

type walletRow struct {
	UID       string  `db:"uid"`
	Free      int64   `db:"free"`
	Standard  int64   `db:"standard"`
	UpdatedAt sqlTime `db:"updated_at"`
}

type movementRow struct {
	ID        int64   `db:"id"`
	UID       string  `db:"uid"`
	Balance   string  `db:"balance"`
	Amount    int64   `db:"amount"`
	Reason    string  `db:"reason"`
	Reference string  `db:"reference"`
	ActorUID  string  `db:"actor_uid"`
	CreatedAt sqlTime `db:"created_at"`
	Total     int     `db:"total"` // count(*) OVER () in Movements, else 0
}

// Balances returns what the user holds: zero balances for a user who never had a movement.
func (v *WalletView) Balances(ctx context.Context, uid string) (Balances, error) {
	var r walletRow
	q := v.d.rebind(`SELECT uid, free, standard, updated_at FROM wallets WHERE generation = ` + walletsLive + ` AND uid = ?`)
	err := v.db.GetContext(ctx, &r, q, uid)
	if errors.Is(err, sql.ErrNoRows) {
		return Balances{}, nil
	}
	if err != nil {
		return Balances{}, fmt.Errorf("projections: wallet of %s: %w", uid, err)
	}
	return Balances{Free: r.Free, Standard: r.Standard, UpdatedAt: r.UpdatedAt.Time}, nil
}

// Movements returns a page of a user's movements, newest first, and how many they have in all.
// A filter without a user matches ErrInvalidFilter.
func (v *WalletView) Movements(ctx context.Context, f MovementFilter) (movements []Movement, total int, err error) {
	if f.UID == "" {
		return nil, 0, &FilterError{Field: "uid", Reason: "is required"}
	}
	lim, off, err := page(f.Page, f.Limit)
	if err != nil {
		return nil, 0, err
	}
	var rows []movementRow
	q := v.d.rebind(`SELECT ` + movementColumns + `, count(*) OVER () AS total FROM wallet_movements
		WHERE generation = ` + walletsLive + ` AND uid = ? ORDER BY id DESC LIMIT ? OFFSET ?`)
	if err := v.db.SelectContext(ctx, &rows, q, f.UID, lim, off); err != nil {
		return nil, 0, fmt.Errorf("projections: wallet movements of %s: %w", f.UID, err)
	}
	movements = make([]Movement, len(rows))
	for i, r := range rows {
		movements[i] = Movement{
			ID: r.ID, UID: r.UID, Balance: r.Balance, Amount: r.Amount, Reason: r.Reason,
			Reference: r.Reference, ActorUID: r.ActorUID, CreatedAt: r.CreatedAt.Time,
		}
	}
	if len(rows) > 0 {
		return movements, rows[0].Total, nil
	}
	q = v.d.rebind(`SELECT count(*) FROM wallet_movements WHERE generation = ` + walletsLive + ` AND uid = ?`)
	if err := v.db.GetContext(ctx, &total, q, f.UID); err != nil {
		return nil, 0, fmt.Errorf("projections: count wallet movements of %s: %w", f.UID, err)
	}
	return movements, total, nil
}

// Name implements Projector.
func (v *WalletView) Name() string { return WalletProjector }

var walletEvents = []domain.Event{domain.WalletCredited{}, domain.WalletDebited{}, domain.UserErased{}}

// Interest implements Projector. An event type this build does not know stops the projector: it
// may move coins, and skipping it would leave balances wrong for good.
func (v *WalletView) Interest() Interest {
	return Interest{StreamPrefix: domain.UserStreamPrefix, Types: eventTypes(walletEvents)}
}

// Tables implements Projector.
func (v *WalletView) Tables() []string { return []string{"wallets", "wallet_movements"} }

// Apply implements Projector. It loads the batch's wallets once, applies the movements in memory,
// then writes the movements with multi-row inserts and each changed wallet with one multi-row
// upsert of its new balances. A movement that would take a balance below zero fails at its event:
// the domain never records one, so the log or the read model would be wrong.
func (v *WalletView) Apply(ctx context.Context, tx *Tx, events []eventstore.Event) (err error) {
	var erased []string
	type decoded struct {
		e   eventstore.Event
		row movementRow
	}
	batch := make([]decoded, 0, len(events))
	var uids []string
	seen := map[string]bool{}
	// The movements stay (they are the accounts), without the callers' references once the user
	// is erased: a reference may name a bank account or an order of theirs.
	defer func() {
		if err == nil {
			err = v.scrub(ctx, tx, erased)
		}
	}()
	for _, e := range events {
		uid, err := domain.UserIDFromStream(e.StreamID)
		if err != nil {
			return FailedAt(e, err)
		}
		de, err := tx.decode(v.reg, e)
		if err != nil {
			return FailedAt(e, err)
		}
		m := movementRow{ID: int64(e.GlobalPosition), UID: string(uid), ActorUID: e.Metadata.ActorUID, CreatedAt: sqlTime{e.RecordedAt}}
		switch ev := de.(type) {
		case domain.WalletCredited:
			m.Balance, m.Amount, m.Reason, m.Reference = ev.Balance.String(), ev.Amount, ev.Reason, ev.Reference
		case domain.WalletDebited:
			m.Balance, m.Amount, m.Reason, m.Reference = ev.Balance.String(), -ev.Amount, ev.Reason, ev.Reference
		case domain.UserErased:
			erased = append(erased, string(uid))
			continue
		default:
			continue
		}
		if m.Amount == 0 || m.Balance == "" {
			return FailedAt(e, fmt.Errorf("movement of %d coins on balance %q", m.Amount, m.Balance))
		}
		batch = append(batch, decoded{e, m})
		if !seen[m.UID] {
			seen[m.UID] = true
			uids = append(uids, m.UID)
		}
	}
	if len(batch) == 0 {
		return nil
	}

	wallets := make(map[string]*walletRow, len(uids))
	const chunk = 1000
	for i := 0; i < len(uids); i += chunk {
		part := uids[i:min(i+chunk, len(uids))]
		q, args, err := sqlx.In(`SELECT uid, free, standard, updated_at FROM wallets WHERE generation = ? AND uid IN (?)`, tx.Generation, part)
		if err != nil {
			return err
		}
		var rows []walletRow
		if err := tx.SelectContext(ctx, &rows, tx.Rebind(q), args...); err != nil {
			return fmt.Errorf("load wallets: %w", err)
		}
		for j := range rows {
			wallets[rows[j].UID] = &rows[j]
		}
	}
	// Every wallet of the batch changes: each uid is written once, with its final balances.
	dirty := make([]*walletRow, len(uids))
	for i, uid := range uids {
		if wallets[uid] == nil {
			wallets[uid] = &walletRow{UID: uid}
		}
		dirty[i] = wallets[uid]
	}
	for _, d := range batch {
		w := wallets[d.row.UID]
		bal := &w.Free
		if d.row.Balance == domain.BalanceStandard.String() {
			bal = &w.Standard
		}
		if *bal+d.row.Amount < 0 {
			return FailedAt(d.e, fmt.Errorf("%s balance of user %s would go from %d to %d", d.row.Balance, d.row.UID, *bal, *bal+d.row.Amount))
		}
		*bal += d.row.Amount
		w.UpdatedAt = d.row.CreatedAt
	}

	movements := make([][]any, len(batch))
	for i, d := range batch {
		m := d.row
		movements[i] = []any{tx.Generation, m.ID, m.UID, m.Balance, m.Amount, m.Reason, m.Reference, m.ActorUID, m.CreatedAt.Time}
	}
	// COPY during a rebuild on PostgreSQL; else multi-row inserts.
	write := tx.CopyIn
	if !tx.Bulk {
		write = func(ctx context.Context, table string, columns []string, rows [][]any) error {
			return tx.insertRows(ctx, table, columns, rows, "")
		}
	}
	if err := write(ctx, "wallet_movements", movementWriteColumns, movements); err != nil {
		return fmt.Errorf("write wallet movements: %w", err)
	}
	balances := make([][]any, len(dirty))
	for i, w := range dirty {
		balances[i] = []any{tx.Generation, w.UID, w.Free, w.Standard, w.UpdatedAt.Time}
	}
	if err := tx.insertRows(ctx, "wallets", []string{"generation", "uid", "free", "standard", "updated_at"}, balances, `
			ON CONFLICT (generation, uid) DO UPDATE SET free = excluded.free, standard = excluded.standard, updated_at = excluded.updated_at`); err != nil {
		return fmt.Errorf("write wallets: %w", err)
	}
	return nil
}

// scrub replaces the references of erased users' movements.
func (v *WalletView) scrub(ctx context.Context, tx *Tx, uids []string) error {
	for _, uid := range uids {
		if _, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE wallet_movements SET reference = ? WHERE generation = ? AND uid = ? AND reference <> ''`),
			domain.Erased, tx.Generation, uid); err != nil {
			return fmt.Errorf("scrub the wallet movements of %s: %w", uid, err)
		}
	}
	return nil
}

var movementWriteColumns = []string{"generation", "id", "uid", "balance", "amount", "reason", "reference", "actor_uid", "created_at"}

var _ Projector = (*WalletView)(nil)
