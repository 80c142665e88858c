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
