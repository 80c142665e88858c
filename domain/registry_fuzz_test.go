package domain_test

import (
	"errors"
	"testing"

	"github.com/idlog/idlog/domain"
)

// FuzzRegistryDecode feeds arbitrary stored data, under every registered type and a range of
// schema versions, to the registry: it must return an event or an error, never panic, and an
// unknown version is ErrUnknownSchemaVersion.
func FuzzRegistryDecode(f *testing.F) {
	reg := domain.NewEventRegistry()
	types := reg.Types()
	for i := range types {
		f.Add(uint16(i), int8(1), []byte(`{"uid":"ID1A2B3C4D5E","email":"a@example.com","amount":1,"balance":"free"}`))
		f.Add(uint16(i), int8(1), []byte(`{"key":null,"scope":7,"value":[],"step":-1}`))
		f.Add(uint16(i), int8(0), []byte(`{}`))
		f.Add(uint16(i), int8(99), []byte(`null`))
	}
	f.Add(uint16(0), int8(1), []byte(`{"uid":`))
	f.Add(uint16(0), int8(-5), []byte(`"x"`))
	f.Fuzz(func(t *testing.T, ti uint16, version int8, data []byte) {
		name := types[int(ti)%len(types)]
		current, err := reg.SchemaVersion(name)
		if err != nil {
			t.Fatal(err)
		}
		ev, err := reg.Decode(name, int(version), data)
		if err == nil {
			if ev == nil || ev.EventType() != name {
				t.Fatalf("Decode(%s v%d, %q) = %v without an error", name, version, data, ev)
			}
			return
		}
		if int(version) > current && !errors.Is(err, domain.ErrUnknownSchemaVersion) {
			t.Fatalf("Decode(%s v%d) newer than v%d: %v, want ErrUnknownSchemaVersion", name, version, current, err)
		}
	})
}
