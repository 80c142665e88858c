package projections_test

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/idlog/idlog/auth"
	"github.com/idlog/idlog/domain"
	"github.com/idlog/idlog/projections"
)

// The password classes view lists the cost classes of imported hashes still stored, and forgets
// a user's once idlog hashed their password again; users registered here add none.
func TestPasswordClassesView(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, b backend) {
		e := b.open(t, envOptions{})
		v := projections.NewPasswordClassesView(e.db, e.dialect, auth.CostClass)
		r := start(t, e.runtime(t, projections.Options{}, v))
		ctx := context.Background()

		b10, _ := bcrypt.GenerateFromPassword([]byte("one"), 4)
		b10b, _ := bcrypt.GenerateFromPassword([]byte("two"), 4)
		b5, _ := bcrypt.GenerateFromPassword([]byte("three"), 5)
		imported := func(uid, hash string) domain.UserRegistered {
			reg := registered(uid, strings.ToLower(uid)+"@example.com", "")
			reg.PasswordHash, reg.CreatedAt = hash, time.Date(2019, 5, 1, 12, 0, 0, 0, time.UTC)
			return reg
		}
		a, bb, c, own := newUID(), newUID(), newUID(), newUID()
		appendTo(t, e.store, a, userMeta(a), imported(a, string(b10)))
		appendTo(t, e.store, bb, userMeta(bb), imported(bb, string(b10b)))
		appendTo(t, e.store, c, userMeta(c), imported(c, string(b5)))
		res := appendTo(t, e.store, own, userMeta(own), registered(own, strings.ToLower(own)+"@example.com", ""))
		waitFor(t, r, res.LastPosition)
		got, err := v.Classes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"$2a$04$" + strings.Repeat(".", 53), "$2a$05$" + strings.Repeat(".", 53)}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("classes %q, want %q", got, want)
		}

		res = appendTo(t, e.store, c, userMeta(c), domain.PasswordRehashed{PasswordHash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA"})
		waitFor(t, r, res.LastPosition)
		if got, _ := v.Classes(ctx); !reflect.DeepEqual(got, want[:1]) {
			t.Fatalf("after the cost 5 user's rehash: classes %q, want %q", got, want[:1])
		}
		appendTo(t, e.store, a, userMeta(a), domain.PasswordChanged{PasswordHash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA"})
		res = appendTo(t, e.store, bb, userMeta(bb), domain.PasswordReset{PasswordHash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA"})
		waitFor(t, r, res.LastPosition)
		if got, _ := v.Classes(ctx); len(got) != 0 {
			t.Fatalf("every imported hash replaced: classes %q, want none", got)
		}
	})
}
