package migrations_test

import (
	"context"
	"database/sql"
	"sync"
	"testing"

	_ "github.com/lib/pq"

	"github.com/idlog/idlog/eventstore/eventstoretest"
	"github.com/idlog/idlog/migrations"
)

// TestReplicasMigrateAtOnce starts the migrations of three replicas at once on an empty schema,
// each over its own connection pool as separate processes would: all succeed.
func TestReplicasMigrateAtOnce(t *testing.T) {
	t.Parallel()
	dsn := eventstoretest.PostgresSchema(t)
	const replicas = 3
	var wg sync.WaitGroup
	errs := make([]error, replicas)
	start := make(chan struct{})
	for i := range replicas {
		db, err := sql.Open("postgres", dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		if err := db.Ping(); err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			<-start
			errs[i] = migrations.Up(context.Background(), db, migrations.Postgres)
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("replica %d: %v", i, err)
		}
	}
	db, err := sql.Open("postgres", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	v, err := migrations.Version(context.Background(), db, migrations.Postgres)
	latest, _ := migrations.Latest(migrations.Postgres)
	if err != nil || v != latest {
		t.Fatalf("version %d, %v; want %d", v, err, latest)
	}
}
