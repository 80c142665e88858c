package domain

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"
)

// Event is a domain event. EventType is its stable stored name, never derived from the Go type
// name, so renaming a struct cannot break history.
type Event interface {
	EventType() string
}

// Errors of decoding stored events.
var (
	// ErrUnknownEventType: a stored event's type has no registration.
	ErrUnknownEventType = errors.New("domain: unknown event type")
	// ErrUnknownSchemaVersion: the type is known but this schema version is neither current nor
	// upcastable.
	ErrUnknownSchemaVersion = errors.New("domain: unknown event schema version")
)

// Upcaster turns the JSON of schema version N into the JSON of version N+1.
type Upcaster func(old json.RawMessage) (json.RawMessage, error)

type registration struct {
	typ       reflect.Type
	version   int
	upcasters map[int]Upcaster // from version -> to from+1
	personal  []string         // JSON names of the fields tagged personal:"true"
}

// Registry maps stored event type names to Go types and upcasts old schema versions on read.
// Old versions are never rewritten in the log.
type Registry struct {
	mu    sync.RWMutex
	types map[string]*registration
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{types: map[string]*registration{}} }

// Register maps name to the Go type of proto (a struct value, not a pointer) at schema version
// version. Registering a name twice is a wiring mistake and panics.
func (r *Registry) Register(proto Event, version int) {
	t := reflect.TypeOf(proto)
	if t.Kind() == reflect.Pointer {
		panic(fmt.Sprintf("domain: register %s with a struct value, not a pointer", proto.EventType()))
	}
	if version < 1 {
		panic(fmt.Sprintf("domain: schema version of %s must be >= 1, got %d", proto.EventType(), version))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	name := proto.EventType()
	if _, dup := r.types[name]; dup {
		panic(fmt.Sprintf("domain: event type %q registered twice", name))
	}
	r.types[name] = &registration{typ: t, version: version, upcasters: map[int]Upcaster{}, personal: personalFields(name, t)}
}

// RegisterUpcaster adds the step from schema version `from` to `from+1` of a registered type.
func (r *Registry) RegisterUpcaster(name string, from int, up Upcaster) {
	r.mu.Lock()
	defer r.mu.Unlock()
	reg, ok := r.types[name]
	if !ok {
		panic(fmt.Sprintf("domain: upcaster for unregistered event type %q", name))
	}
	reg.upcasters[from] = up
}

// SchemaVersion is the current schema version of a registered type.
func (r *Registry) SchemaVersion(name string) (int, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	reg, ok := r.types[name]
	if !ok {
		return 0, fmt.Errorf("%w: %q", ErrUnknownEventType, name)
	}
	return reg.version, nil
}

// Types lists the registered type names, sorted.
func (r *Registry) Types() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]string, 0, len(r.types))
	for n := range r.types {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Decode turns stored data of the given type and schema version into the registered Go value,
// upcasting old versions first.
func (r *Registry) Decode(name string, version int, data []byte) (Event, error) {
	r.mu.RLock()
	reg, ok := r.types[name]
	r.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownEventType, name)
	}
	raw := json.RawMessage(data)
	for v := version; v < reg.version; v++ {
		up, ok := reg.upcasters[v]
		if !ok {
			return nil, fmt.Errorf("%w: %s v%d (current v%d, no upcaster from v%d)", ErrUnknownSchemaVersion, name, version, reg.version, v)
		}
		var err error
		if raw, err = up(raw); err != nil {
			return nil, fmt.Errorf("domain: upcast %s v%d: %w", name, v, err)
		}
	}
	if version > reg.version {
		return nil, fmt.Errorf("%w: %s v%d is newer than this build's v%d", ErrUnknownSchemaVersion, name, version, reg.version)
	}
	ptr := reflect.New(reg.typ)
	if err := json.Unmarshal(raw, ptr.Interface()); err != nil {
		return nil, fmt.Errorf("domain: decode %s v%d: %w", name, version, err)
	}
	return ptr.Elem().Interface().(Event), nil
}

// PersonalTag marks an event's field that holds personal data: `personal:"true"` beside its json
// tag. The store seals such fields with the user's data key when it appends the event and opens
// them when it reads it (package personaldata), so erasing the user (destroying the key) makes
// them unreadable everywhere without rewriting the log. Only top-level JSON fields of type string
// or json.RawMessage may carry it (fields of embedded structs count as top-level, as in JSON).
const PersonalTag = "personal"

// PersonalFields lists the JSON names of the personal fields of a registered type, nil if it has
// none or is not registered. The caller must not change the slice.
func (r *Registry) PersonalFields(name string) []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if reg, ok := r.types[name]; ok {
		return reg.personal
	}
	return nil
}

var rawMessageType = reflect.TypeOf(json.RawMessage(nil))

// personalFields finds the fields of t tagged personal, by their JSON names. A tag on a field the
// store cannot seal as a whole JSON value (not a string or raw JSON, no JSON name) is a wiring
// mistake and panics.
func personalFields(event string, t reflect.Type) []string {
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Anonymous && f.Type.Kind() == reflect.Struct && f.Tag.Get("json") == "" {
			out = append(out, personalFields(event, f.Type)...)
			continue
		}
		if f.Tag.Get(PersonalTag) != "true" {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" {
			panic(fmt.Sprintf("domain: personal field %s of %s needs a json name", f.Name, event))
		}
		if f.Type.Kind() != reflect.String && f.Type != rawMessageType {
			panic(fmt.Sprintf("domain: personal field %s of %s must be a string or json.RawMessage, not %s", f.Name, event, f.Type))
		}
		out = append(out, name)
	}
	return out
}
