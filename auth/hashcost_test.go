package auth_test

import (
	"reflect"
	"testing"

	"github.com/idlog/idlog/auth"
)

// A cost class keeps a hash's algorithm and costs, drops its salt and key, is itself a valid
// hash of that format that verifies no password, and is the same for two hashes of one cost.
func TestCostClass(t *testing.T) {
	t.Parallel()
	h := hasher(t, auth.Params{Memory: 64, Iterations: 1, Parallelism: 1, SaltLength: 16, KeyLength: 32})
	one, two := importedHashes(t, "first password"), importedHashes(t, "second password")
	for name, raw := range one {
		canonical, _ := auth.CanonicalImportedHash(raw)
		other, _ := auth.CanonicalImportedHash(two[name])
		cl := auth.CostClass(canonical)
		if cl == "" || cl == canonical {
			t.Errorf("%s: class %q of %q", name, cl, canonical)
			continue
		}
		if cl != auth.CostClass(other) {
			t.Errorf("%s: two hashes of one cost have classes %q and %q", name, cl, auth.CostClass(other))
		}
		if auth.ImportedScheme(cl) != auth.ImportedScheme(canonical) {
			t.Errorf("%s: class %q is of scheme %q, want %q", name, cl, auth.ImportedScheme(cl), auth.ImportedScheme(canonical))
		}
		if auth.CostClass(cl) != cl {
			t.Errorf("%s: the class of class %q is %q", name, cl, auth.CostClass(cl))
		}
		if ok, err := h.Verify("first password", cl); ok || err != nil {
			t.Errorf("%s: class %q verifies the password: %v, %v", name, cl, ok, err)
		}
	}
	if auth.CostClass("nonsense") != "" {
		t.Error("a malformed hash has a class")
	}
}

// The classes a hasher pads with are those set from the stored hashes and those Verify met,
// never its own.
func TestCostClassesPadded(t *testing.T) {
	t.Parallel()
	h := hasher(t, auth.Params{Memory: 64, Iterations: 1, Parallelism: 1, SaltLength: 16, KeyLength: 32})
	hashes := importedHashes(t, "pw")
	bc, _ := auth.CanonicalImportedHash(hashes["bcrypt 2a"])
	sc, _ := auth.CanonicalImportedHash(hashes["scrypt (passlib)"])
	own := auth.CostClass(h.Hash("pw"))
	h.SetCostClasses([]string{auth.CostClass(bc), own, "", "garbage", auth.CostClass(bc)})
	if got, want := h.CostClasses(), []string{auth.CostClass(bc)}; !reflect.DeepEqual(got, want) {
		t.Fatalf("classes %q, want %q", got, want)
	}
	if ok, _ := h.Verify("wrong", sc); ok {
		t.Fatal("wrong password verified")
	}
	h.SetCostClasses(nil) // what Verify met stays
	if got, want := h.CostClasses(), []string{auth.CostClass(sc)}; !reflect.DeepEqual(got, want) {
		t.Fatalf("classes %q, want %q", got, want)
	}
	h.PadFailure("wrong", sc) // runs, and does not panic on its own class
	h.DummyVerify("wrong")
}
