package eventbus_test

import (
	"encoding/json"
	"os"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/idlog/idlog/domain"
	"github.com/idlog/idlog/eventbus"
)

// asyncAPI is the part of docs/asyncapi.yaml the test reads.
type asyncAPI struct {
	AsyncAPI string `yaml:"asyncapi"`
	Channels map[string]struct {
		Address  string         `yaml:"address"`
		Messages map[string]any `yaml:"messages"`
	} `yaml:"channels"`
	Components struct {
		Schemas  map[string]schema `yaml:"schemas"`
		Messages map[string]struct {
			Name    string `yaml:"name"`
			Payload struct {
				AllOf []struct {
					Properties struct {
						Type struct {
							Const string `yaml:"const"`
						} `yaml:"type"`
						Data struct {
							Ref string `yaml:"$ref"`
						} `yaml:"data"`
					} `yaml:"properties"`
				} `yaml:"allOf"`
			} `yaml:"payload"`
			Examples []struct {
				Payload map[string]any `yaml:"payload"`
			} `yaml:"examples"`
		} `yaml:"messages"`
	} `yaml:"components"`
}

type schema struct {
	Properties map[string]any `yaml:"properties"`
	Required   []string       `yaml:"required"`
}

// docs/asyncapi.yaml documents every event idlog registers: its schema lists the event's fields
// as published, and its example decodes as that event.
func TestAsyncAPIDocumentsEveryEvent(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("../docs/asyncapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc asyncAPI
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("docs/asyncapi.yaml is not YAML: %v", err)
	}
	if doc.AsyncAPI != "3.0.0" {
		t.Errorf("asyncapi %q, want 3.0.0", doc.AsyncAPI)
	}
	events, notifications := doc.Channels["events"], doc.Channels["notifications"]
	if events.Address != "idlog.events.{type}.{uid}" || notifications.Address != "idlog.notifications.{kind}" {
		t.Errorf("channel addresses %q and %q, want idlog.events.{type}.{uid} and idlog.notifications.{kind}", events.Address, notifications.Address)
	}
	if _, ok := doc.Components.Messages["Notification"]; !ok || len(notifications.Messages) == 0 {
		t.Error("no Notification message on the notifications channel")
	}

	reg := domain.NewEventRegistry()
	for _, typ := range reg.Types() {
		msg, ok := doc.Components.Messages[typ]
		if !ok {
			t.Errorf("%s: no message in components.messages", typ)
			continue
		}
		if _, ok := events.Messages[typ]; !ok {
			t.Errorf("%s: not among the events channel's messages", typ)
		}
		if msg.Name != typ || len(msg.Payload.AllOf) != 2 || msg.Payload.AllOf[1].Properties.Type.Const != typ {
			t.Errorf("%s: the message's name or payload type is not %s", typ, typ)
			continue
		}
		dataSchema, ok := doc.Components.Schemas[strings.TrimPrefix(msg.Payload.AllOf[1].Properties.Data.Ref, "#/components/schemas/")]
		if !ok {
			t.Errorf("%s: data schema %q not found", typ, msg.Payload.AllOf[1].Properties.Data.Ref)
			continue
		}
		if len(msg.Examples) != 1 {
			t.Errorf("%s: %d examples, want 1", typ, len(msg.Examples))
			continue
		}
		ex := msg.Examples[0].Payload
		if ex["type"] != typ || ex["specversion"] != "1.0" {
			t.Errorf("%s: example is of type %v, specversion %v", typ, ex["type"], ex["specversion"])
		}
		data, err := json.Marshal(ex["data"])
		if err != nil {
			t.Fatal(err)
		}
		version, _ := reg.SchemaVersion(typ)
		decoded, err := reg.Decode(typ, version, data)
		if err != nil {
			t.Errorf("%s: example data %s does not decode: %v", typ, data, err)
			continue
		}
		props, required := publishedFields(reflect.TypeOf(decoded))
		if got := sortedKeys(dataSchema.Properties); !slices.Equal(got, props) {
			t.Errorf("%s: schema properties %v, want the published fields %v", typ, got, props)
		}
		if got := slices.Sorted(slices.Values(dataSchema.Required)); !slices.Equal(got, required) {
			t.Errorf("%s: schema requires %v, want %v", typ, got, required)
		}
		exData, _ := ex["data"].(map[string]any)
		for k := range exData {
			if !slices.Contains(props, k) {
				t.Errorf("%s: example data has %q, which the event does not publish", typ, k)
			}
		}
	}
	// No message for an event type idlog does not have.
	for name := range doc.Components.Messages {
		if _, err := reg.SchemaVersion(name); err != nil && name != "Notification" {
			t.Errorf("message %s documents no registered event", name)
		}
	}
}

// publishedFields lists an event struct's JSON fields that the relay publishes, and those among
// them that are always present (neither omitempty nor omitzero), both sorted. The fields of an
// embedded struct without a JSON name are the event's own, as encoding/json has them.
func publishedFields(t reflect.Type) (all, required []string) {
	withheld := eventbus.ExportWithheldFields
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		name, opts, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" && tag != "-" && f.Type.Kind() == reflect.Struct {
			a, r := publishedFields(f.Type)
			all, required = append(all, a...), append(required, r...)
			continue
		}
		if name == "" || name == "-" || slices.Contains(withheld, name) {
			continue
		}
		all = append(all, name)
		if !slices.ContainsFunc(strings.Split(opts, ","), func(o string) bool { return o == "omitempty" || o == "omitzero" }) {
			required = append(required, name)
		}
	}
	sort.Strings(all)
	sort.Strings(required)
	return all, required
}

func sortedKeys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// The signed message the document shows verifies with the key it shows, as its Python example
// does it, and fails once altered; the CloudEvent schema lists the signature's attributes.
func TestAsyncAPISignatureExampleVerifies(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("../docs/asyncapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Info struct {
			Example struct {
				JWKS    string `yaml:"jwks"`
				Subject string `yaml:"subject"`
				Message string `yaml:"message"`
			} `yaml:"x-signature-example"`
		} `yaml:"info"`
		Components struct {
			Schemas map[string]schema `yaml:"schemas"`
		} `yaml:"components"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	ex := doc.Info.Example
	keys, err := eventbus.ParseEventKeys([]byte(ex.JWKS))
	if err != nil {
		t.Fatalf("x-signature-example.jwks: %v", err)
	}
	if _, err := eventbus.VerifyEvent(keys, ex.Subject, []byte(ex.Message)); err != nil {
		t.Errorf("x-signature-example does not verify: %v", err)
	}
	altered := strings.Replace(ex.Message, `"role":"member"`, `"role":"admin"`, 1)
	if _, err := eventbus.VerifyEvent(keys, ex.Subject, []byte(altered)); err == nil || altered == ex.Message {
		t.Error("x-signature-example verifies once altered")
	}
	ce := doc.Components.Schemas["CloudEvent"]
	for _, attr := range []string{"idlogkeyid", "idlogsignature"} {
		if _, ok := ce.Properties[attr]; !ok || !slices.Contains(ce.Required, attr) {
			t.Errorf("the CloudEvent schema does not require %s", attr)
		}
	}
}
