package eventstore_test

import (
	"errors"
	"testing"
	"time"

	"github.com/idlog/idlog/eventstore"
)

func TestSignalWakesEveryWaiterOnce(t *testing.T) {
	t.Parallel()
	var s eventstore.Signal
	a, b := s.Changed(), s.Changed()
	select {
	case <-a:
		t.Fatal("woken before Notify")
	default:
	}
	s.Notify()
	for _, ch := range []<-chan struct{}{a, b} {
		select {
		case <-ch:
		case <-time.After(time.Second):
			t.Fatal("a waiter was not woken by Notify")
		}
	}
	select {
	case <-s.Changed():
		t.Fatal("a channel taken after Notify is already closed")
	default:
	}
	s.Notify()
	s.Notify() // with nobody waiting: no panic on a closed channel
}

func TestFilterMatch(t *testing.T) {
	t.Parallel()
	e := eventstore.Event{StreamID: "user-ID01", Type: "OTPEnabled"}
	cases := []struct {
		f    eventstore.Filter
		want bool
	}{
		{eventstore.Filter{}, true},
		{eventstore.Filter{StreamPrefix: "user-"}, true},
		{eventstore.Filter{StreamPrefix: "user-ID01-longer"}, false},
		{eventstore.Filter{StreamPrefix: "wallet-"}, false},
		{eventstore.Filter{Types: []string{"LabelAdded", "OTPEnabled"}}, true},
		{eventstore.Filter{Types: []string{"LabelAdded"}}, false},
		{eventstore.Filter{StreamPrefix: "user-", Types: []string{"LabelAdded"}}, false},
	}
	for _, c := range cases {
		if got := c.f.Match(e); got != c.want {
			t.Errorf("%+v.Match = %v, want %v", c.f, got, c.want)
		}
	}
}

func TestKeyTakenErrorIsErrKeyTaken(t *testing.T) {
	t.Parallel()
	var err error = &eventstore.KeyTakenError{Key: "email:a@example.com"}
	if !errors.Is(err, eventstore.ErrKeyTaken) || errors.Is(err, eventstore.ErrConcurrency) {
		t.Errorf("errors.Is mismatch for %v", err)
	}
	if eventstore.Exactly(3).String() != "version 3" || eventstore.NoStream.String() != "no stream" || eventstore.Any.String() != "any" {
		t.Error("ExpectedVersion.String is off")
	}
}

func TestCheckJSONText(t *testing.T) {
	t.Parallel()
	cases := map[string]bool{ // JSON -> may enter the log
		`{"a":"b"}`:                      true,
		`"é 😀 \u00e9 \ud83d\ude00"`:      true,
		`"\\u0000"`:                      true, // an escaped backslash, then text
		`"\\\u0000"`:                     false,
		`"\u0000"`:                       false,
		`"\U0000"`:                       true, // not an escape JSON knows; json.Valid refuses it
		`"\ud800"`:                       false,
		`"\udc00\ud800"`:                 false,
		`"\ud800\u0041"`:                 false,
		`"\ud800x"`:                      false,
		"\"\xff\"":                       false,
		"\"\xed\xa0\x80\"":               false, // a surrogate encoded in UTF-8
		"\"a\x00\"":                      false,
		`{"k":["\u0001","\u001f","\t"]}`: true,
	}
	for in, ok := range cases {
		err := eventstore.CheckJSONText([]byte(in))
		if (err == nil) != ok || (err != nil && !errors.Is(err, eventstore.ErrInvalidText)) {
			t.Errorf("CheckJSONText(%q) = %v, want ok %v", in, err, ok)
		}
	}
}
