package eventbus_test

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"gopkg.in/yaml.v3"

	"github.com/idlog/idlog/domain"
	"github.com/idlog/idlog/eventbus"
	"github.com/idlog/idlog/eventstore"
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

// signatureExamples are the signed messages docs/asyncapi.yaml shows, with their keys, and the
// Python verifier its description gives.
type signatureExamples struct {
	Python   string
	Pattern  *regexp.Regexp // the CloudEvent schema's pattern of idlogsignature
	Examples []signatureExample
	Required []string // the CloudEvent schema's required attributes
}

type signatureExample struct {
	JWKS    string `yaml:"jwks"`
	Subject string `yaml:"subject"`
	Message string `yaml:"message"`
}

func readSignatureExamples(t *testing.T) signatureExamples {
	t.Helper()
	raw, err := os.ReadFile("../docs/asyncapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Info struct {
			Description string           `yaml:"description"`
			Example     signatureExample `yaml:"x-signature-example"`
			Batch       struct {
				JWKS     string             `yaml:"jwks"`
				Messages []signatureExample `yaml:"messages"`
			} `yaml:"x-batch-signature-example"`
		} `yaml:"info"`
		Components struct {
			Schemas map[string]struct {
				Properties map[string]struct {
					Pattern string `yaml:"pattern"`
				} `yaml:"properties"`
				Required []string `yaml:"required"`
			} `yaml:"schemas"`
		} `yaml:"components"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	var out signatureExamples
	out.Examples = append(out.Examples, doc.Info.Example)
	for _, m := range doc.Info.Batch.Messages {
		m.JWKS = doc.Info.Batch.JWKS
		out.Examples = append(out.Examples, m)
	}
	if len(out.Examples) < 3 {
		t.Fatalf("the document shows %d signed examples, want one alone and two of a batch", len(out.Examples))
	}
	_, code, ok1 := strings.Cut(doc.Info.Description, "```python\n")
	code, _, ok2 := strings.Cut(code, "```")
	if !ok1 || !ok2 {
		t.Fatal("the description holds no Python verifier")
	}
	out.Python = code
	ce := doc.Components.Schemas["CloudEvent"]
	out.Pattern = regexp.MustCompile(ce.Properties["idlogsignature"].Pattern)
	out.Required = ce.Required
	for _, attr := range []string{"idlogkeyid", "idlogsignature"} {
		if _, ok := ce.Properties[attr]; !ok {
			t.Errorf("the CloudEvent schema has no %s", attr)
		}
	}
	return out
}

// The signed messages the document shows, one signed alone and two of a batch, verify with the
// keys it shows, match the schema's pattern, and fail once altered; the CloudEvent schema
// requires the signature's attributes.
func TestAsyncAPISignatureExampleVerifies(t *testing.T) {
	t.Parallel()
	doc := readSignatureExamples(t)
	for i, ex := range doc.Examples {
		keys, err := eventbus.ParseEventKeys([]byte(ex.JWKS))
		if err != nil {
			t.Fatalf("example %d: jwks: %v", i, err)
		}
		ce, err := eventbus.VerifyEvent(keys, ex.Subject, []byte(ex.Message))
		if err != nil {
			t.Errorf("example %d does not verify: %v", i, err)
		}
		if !doc.Pattern.MatchString(ce.Signature) {
			t.Errorf("example %d: idlogsignature %s does not match the schema's pattern %s", i, ce.Signature, doc.Pattern)
		}
		altered := strings.Replace(ex.Message, `"ID1A2B3C4D5E"`, `"ID1A2B3C4D5F"`, 1)
		if _, err := eventbus.VerifyEvent(keys, "", []byte(altered)); err == nil || altered == ex.Message {
			t.Errorf("example %d verifies once altered", i)
		}
	}
	for _, attr := range []string{"idlogkeyid", "idlogsignature"} {
		if !slices.Contains(doc.Required, attr) {
			t.Errorf("the CloudEvent schema does not require %s", attr)
		}
	}
}

// The Python verifier of the document agrees with VerifyEvent: it accepts the document's
// examples and the relay's messages (trees of every size up to 16, and a message alone), and
// refuses them altered, a leaf index moved, or a path cut short. It needs python3 with the
// cryptography package (.ci/run installs it): IDLOG_TEST_PYTHON, or python3 on the PATH.
func TestAsyncAPIPythonVerifierAgreesWithGo(t *testing.T) {
	t.Parallel()
	python := cmp.Or(os.Getenv("IDLOG_TEST_PYTHON"), "python3")
	if _, err := exec.Command(python, "-c", "import cryptography").CombinedOutput(); err != nil {
		t.Skipf("SKIPPED: %s with the cryptography package is not installed (%v)", python, err)
	}
	doc := readSignatureExamples(t)
	jwks, err := json.Marshal(testSigner.JWKS())
	if err != nil {
		t.Fatal(err)
	}
	type verdict struct {
		JWKS string `json:"jwks"`
		Body string `json:"body"`
		Want bool   `json:"want"`
	}
	var cases []verdict
	for _, ex := range doc.Examples {
		cases = append(cases, verdict{ex.JWKS, ex.Message, true},
			verdict{ex.JWKS, strings.Replace(ex.Message, `"ID1A2B3C4D5E"`, `"ID1A2B3C4D5F"`, 1), false})
	}
	batch := make([]eventstore.Event, 33) // chunks of 32: trees of 16 and 16, then one alone
	for i := range batch {
		batch[i] = eventstore.Event{ID: uuid.New(), Type: "UserDataUpdated", StreamID: fmt.Sprintf("user-ID%010X", i), StreamVersion: 2,
			GlobalPosition: uint64(i + 1), SchemaVersion: 1, Data: json.RawMessage(fmt.Sprintf(`{"data":{"n":%d}}`, i)), RecordedAt: time.Now()}
	}
	bodies := eventbus.ExportEncodeBatch(testSigner, eventbus.DefaultSource, batch)
	for size := 2; size <= 16; size++ {
		bodies = append(bodies, eventbus.ExportEncodeBatch(testSigner, eventbus.DefaultSource, batch[:size])...)
	}
	for _, b := range bodies {
		if _, err := eventbus.VerifyEvent(testSigner.Keys(), "", b); err != nil {
			t.Fatal(err)
		}
		cases = append(cases, verdict{string(jwks), string(b), true})
		value := string(b[bytes.LastIndex(b, []byte(`"idlogsignature":"`))+len(`"idlogsignature":"`) : len(b)-2])
		if parts := strings.Split(value, "."); len(parts) == 4 {
			n, _ := strconv.Atoi(parts[1])
			size, _ := strconv.Atoi(parts[2])
			moved := strings.Join([]string{parts[0], strconv.Itoa((n + 1) % size), parts[2], parts[3]}, ".")
			short := strings.Join([]string{parts[0], parts[1], parts[2], parts[3][:len(parts[3])-43]}, ".")
			for _, v := range []string{moved, short} {
				forged := strings.Replace(string(b), value, v, 1)
				if _, err := eventbus.VerifyEvent(testSigner.Keys(), "", []byte(forged)); err == nil {
					t.Fatalf("VerifyEvent accepts %s", forged)
				}
				cases = append(cases, verdict{string(jwks), forged, false})
			}
		}
	}
	input, err := json.Marshal(cases)
	if err != nil {
		t.Fatal(err)
	}
	script := doc.Python + `
import sys
bad = 0
for i, c in enumerate(json.load(sys.stdin)):
    try:
        verify(c["body"].encode(), json.loads(c["jwks"]))
        ok = True
    except Exception:
        ok = False
    if ok != c["want"]:
        bad += 1
        print("case %d: verify says %s, Go says %s: %s" % (i, ok, c["want"], c["body"]))
sys.exit(1 if bad else 0)
`
	cmd := exec.Command(python, "-c", script)
	cmd.Stdin = bytes.NewReader(input)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the document's Python verifier disagrees with VerifyEvent (%v):\n%s", err, out)
	}
	if len(cases) < 60 {
		t.Fatalf("only %d cases", len(cases))
	}
}
